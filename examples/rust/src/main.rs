//! Classify images with a cifar-pack ONNX model from Rust: the `ort` crate in its dynamic-loading
//! mode over the onnxruntime shared library (ORT_DYLIB_PATH: the Python package's, set by
//! examples/rust/run), the `image` crate for PNG and JPEG, and a port of Pillow's BILINEAR resize.
//!
//!     ORT_DYLIB_PATH=/path/libonnxruntime.so.1.32.0 predict MODEL.onnx IMAGE...
//!
//! Prints one line per image: path, TAB, label, TAB, every class probability (space-separated, 9
//! significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
//! Input contract (docs/embedding.md): uint8 [N, 32, 32, 3] RGB, NHWC; the graph scales to [0, 1].

use std::io::Write;
use std::process::exit;

use ort::session::Session;
use ort::value::Tensor;

const SIZE: usize = 32;
const BATCH: usize = 256;
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: predict MODEL.onnx IMAGE...");
        exit(2);
    }
    if let Err(e) = run(&args[1], &args[2..]) {
        eprintln!("error: {e}");
        exit(2);
    }
}

fn run(model: &str, files: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let library = std::env::var("ORT_DYLIB_PATH").map_err(|_| "set ORT_DYLIB_PATH to the onnxruntime library")?;
    let env = ort::init_from(library)?.build()?;
    let mut session = Session::builder(&env)?.commit_from_file(model)?;
    let json = session.metadata()?.custom("class_names").ok_or(format!("{model}: no class_names in its metadata"))?;
    let labels: Vec<String> = serde_json::from_str(&json)?;
    let (mut paths, mut pixels, mut failed) = (Vec::new(), Vec::new(), false);
    for file in files {
        match load(file) {
            Ok(rgb) => {
                paths.push(file.as_str());
                pixels.extend_from_slice(&rgb);
            }
            Err(why) => {
                eprintln!("{file}\terror: {why}");
                failed = true;
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
    if failed {
        exit(1);
    }
    Ok(())
}

/// One batch: (n, 32, 32, 3) uint8 -> (n, classes) float32, a line per image on stdout.
fn classify(session: &mut Session, paths: &[&str], pixels: Vec<u8>, labels: &[String]) -> ort::Result<()> {
    let input = Tensor::from_array(([paths.len(), SIZE, SIZE, 3], pixels))?;
    let outputs = session.run(ort::inputs!["images" => input])?;
    let (_, probs) = outputs["probabilities"].try_extract_tensor::<f32>()?;
    let mut out = std::io::stdout().lock();
    for (path, row) in paths.iter().zip(probs.chunks(labels.len())) {
        let best = (0..row.len()).fold(0, |b, c| if row[c] > row[b] { c } else { b });
        let text: Vec<String> = row.iter().map(|p| format_g9(*p)).collect();
        writeln!(out, "{path}\t{}\t{}", labels[best], text.join(" ")).expect("stdout");
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

/// A PNG or JPEG file -> the model's 32x32 RGB bytes: alpha over white, then Pillow's BILINEAR resize.
fn load(path: &str) -> Result<Vec<u8>, String> {
    let reader = image::ImageReader::open(path).map_err(|_| "no such file or not readable".to_string())?;
    let reader = reader.with_guessed_format().map_err(|_| "not a readable image".to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|_| "not a readable image".to_string())?;
    if (w as u64) * (h as u64) > 50_000_000 {
        return Err("larger than 50 megapixels".into());
    }
    let img = image::open(path).map_err(|_| "not a readable image".to_string())?.to_rgba8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for px in img.pixels() {
        let a = px[3] as f64;
        for c in 0..3 {
            let v = px[c] as f64;
            rgb.push(if px[3] == 255 { px[c] as i64 } else { ((v * a + 255.0 * (255.0 - a)) / 255.0).round() as i64 });
        }
    }
    Ok(resize(rgb, w, h).into_iter().map(|v| v as u8).collect())
}

/// Pillow's resample (libImaging/Resample.c), as examples/c/image.c.
fn resize(mut rgb: Vec<i64>, mut w: usize, mut h: usize) -> Vec<i64> {
    let vertical_first = h > SIZE && (h - SIZE) as i64 > (w as i64 - SIZE as i64) * 2;
    for pass in 0..2 {
        let horizontal = if vertical_first { pass == 1 } else { pass == 0 };
        if (if horizontal { w } else { h }) == SIZE {
            continue;
        }
        rgb = resample_axis(&rgb, w, h, horizontal);
        if horizontal { w = SIZE } else { h = SIZE }
    }
    rgb
}

fn resample_axis(src: &[i64], w: usize, h: usize, horizontal: bool) -> Vec<i64> {
    let in_size = if horizontal { w } else { h };
    let scale = in_size as f64 / SIZE as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut kk = vec![0i64; SIZE * ksize];
    let mut bounds = vec![0usize; SIZE * 2];
    for xx in 0..SIZE {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let weights: Vec<f64> = (0..xmax)
            .map(|x| {
                let t = ((x + xmin) as f64 - center + 0.5).abs() / filterscale;
                if t < 1.0 { 1.0 - t } else { 0.0 }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        for (x, w) in weights.iter().enumerate() {
            let v = if total != 0.0 { w / total } else { *w };
            let scaled = v * (1u64 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if v < 0.0 { (-0.5 + scaled) as i64 } else { (0.5 + scaled) as i64 };
        }
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    let (ow, oh) = if horizontal { (SIZE, h) } else { (w, SIZE) };
    let mut out = vec![0i64; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let o = if horizontal { x } else { y };
            let (min, n) = (bounds[o * 2], bounds[o * 2 + 1]);
            for c in 0..3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for i in 0..n {
                    let p = if horizontal { (y * w + min + i) * 3 } else { ((min + i) * w + x) * 3 };
                    ss += src[p + c] * kk[o * ksize + i];
                }
                out[(y * ow + x) * 3 + c] = (ss >> PRECISION_BITS).clamp(0, 255);
            }
        }
    }
    out
}
