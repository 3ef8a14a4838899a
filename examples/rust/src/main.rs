//! Classify images with a cifar-pack ONNX model from Rust: the `ort` crate in its dynamic-loading
//! mode over the onnxruntime shared library (ORT_DYLIB_PATH, set by examples/rust/run), and the
//! model's preprocessing from examples/c/image.c (compiled by build.rs): libjpeg-turbo and libpng,
//! decoded exactly as Pillow does. (The `image` crate's own JPEG decoder gave other pixels than
//! libjpeg-turbo, and it chose the decoder by the file's extension.)
//!
//!     ORT_DYLIB_PATH=/path/libonnxruntime.so.1 predict MODEL.onnx IMAGE...
//!
//! Prints one line per image: path, TAB, label, TAB, every class probability (space-separated, 9
//! significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
//! Input contract (docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to [0, 1].

use std::ffi::{c_char, c_int, c_longlong, CStr, CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::io::Write;
use std::process::ExitCode;

use ort::session::Session;
use ort::value::Tensor;

const SIZE: usize = 32;
const BATCH: usize = 256;

extern "C" {
    // image.h: decode `path` into 32x32x3 RGB `out`; 0, or -1 with a reason in `why`.
    fn cp_load_image(path: *const c_char, max_pixels: c_longlong, out: *mut u8, why: *mut c_char, why_size: usize) -> c_int;
    // image.h: CIFAR_PACK_MAX_PIXELS, else the "max_pixels" in the input metadata's JSON; -1 none, 0 malformed.
    fn cp_max_pixels(input_json: *const c_char) -> c_longlong;
}

fn main() -> ExitCode {
    // args_os: a file name need not be UTF-8 (std::env::args would panic on one that is not).
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.len() < 3 {
        eprintln!("usage: predict MODEL.onnx IMAGE...");
        return ExitCode::from(2);
    }
    match run(&args[1].to_string_lossy(), &args[2..]) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1), // some file could not be read; the others were answered
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Classifies `files`; Ok(false) when some file could not be read (each said on stderr).
fn run(model: &str, files: &[OsString]) -> Result<bool, Box<dyn std::error::Error>> {
    let library = std::env::var("ORT_DYLIB_PATH").map_err(|_| "set ORT_DYLIB_PATH to the onnxruntime library")?;
    let env = ort::init_from(library)?.build()?;
    let mut session = Session::builder(&env)?.commit_from_file(model)?;
    let (names, input) = {
        let meta = session.metadata()?;
        (meta.custom("class_names"), meta.custom("input"))
    };
    let json = names.ok_or(format!("{model}: no class_names in its metadata"))?;
    let labels: Vec<String> = serde_json::from_str(&json)?;
    let max_pixels = max_pixels(model, input)?;
    let (mut paths, mut pixels, mut ok) = (Vec::new(), Vec::new(), true);
    for file in files {
        let name = file.to_string_lossy();
        match load(file, max_pixels) {
            Ok(rgb) => {
                paths.push(name);
                pixels.extend_from_slice(&rgb);
            }
            Err(why) => {
                eprintln!("{name}\terror: {why}");
                ok = false;
            }
        }
        if paths.len() == BATCH {
            classify(&mut session, &paths, std::mem::take(&mut pixels), &labels)?;
            paths.clear();
        }
    }
    if !paths.is_empty() {
        classify(&mut session, &paths, pixels, &labels)?;
    }
    Ok(ok)
}

/// The pixel cap: CIFAR_PACK_MAX_PIXELS, else the max_pixels of metadata_props["input"].
fn max_pixels(model: &str, input: Option<String>) -> Result<i64, String> {
    let input = CString::new(input.unwrap_or_default()).map_err(|_| format!("{model}: input metadata holds a NUL"))?;
    match unsafe { cp_max_pixels(input.as_ptr()) } {
        0 => Err("CIFAR_PACK_MAX_PIXELS must be a whole number of at least 1".into()),
        n if n < 0 => Err(format!(
            "{model}: no max_pixels in its input metadata (exported by an older cifar-pack): \
             set CIFAR_PACK_MAX_PIXELS, or re-export it with cifar-pack export"
        )),
        n => Ok(n),
    }
}

/// One batch: (n, 32, 32, 3) uint8 -> (n, classes) float32, a line per image on stdout.
fn classify<P: AsRef<str>>(session: &mut Session, paths: &[P], pixels: Vec<u8>, labels: &[String]) -> ort::Result<()> {
    let input = Tensor::from_array(([paths.len(), SIZE, SIZE, 3], pixels))?;
    let outputs = session.run(ort::inputs!["images" => input])?;
    let (_, probs) = outputs["probabilities"].try_extract_tensor::<f32>()?;
    let mut out = std::io::stdout().lock();
    for (path, row) in paths.iter().zip(probs.chunks(labels.len())) {
        let best = (0..row.len()).fold(0, |b, c| if row[c] > row[b] { c } else { b });
        let text: Vec<String> = row.iter().map(|p| format_g9(*p)).collect();
        writeln!(out, "{}\t{}\t{}", path.as_ref(), labels[best], text.join(" ")).expect("stdout");
    }
    Ok(())
}

/// C's "%.9g": 9 significant digits, the shorter of fixed and exponent form.
fn format_g9(p: f32) -> String {
    let v = p as f64;
    if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e9) {
        format!("{v:.8e}")
    } else {
        let digits = if v == 0.0 { 8 } else { (8 - v.abs().log10().floor() as i32).max(0) as usize };
        let text = format!("{v:.digits$}");
        if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
    }
}

/// An image file -> the model's (32, 32, 3) uint8 RGB input (image.c), or what is wrong with the file.
fn load(path: &OsString, max_pixels: i64) -> Result<Vec<u8>, String> {
    let c_path = CString::new(path.as_bytes()).map_err(|_| "a path with a NUL byte".to_string())?;
    let mut pixels = vec![0u8; SIZE * SIZE * 3];
    let mut why = [0 as c_char; 256];
    let status = unsafe { cp_load_image(c_path.as_ptr(), max_pixels, pixels.as_mut_ptr(), why.as_mut_ptr(), why.len()) };
    if status != 0 {
        return Err(unsafe { CStr::from_ptr(why.as_ptr()) }.to_string_lossy().into_owned());
    }
    Ok(pixels)
}
