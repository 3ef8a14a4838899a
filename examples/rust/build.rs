// Compiles the model's preprocessing, image.c (a link to examples/c/image.c: one decoder for C,
// C++, Go and Rust), with the cc crate, and links the libpng and libjpeg(-turbo) it calls.
fn main() {
    cc::Build::new().file("image.c").flag("-std=c11").opt_level(2).compile("cifarpackimage");
    println!("cargo:rustc-link-lib=png");
    println!("cargo:rustc-link-lib=jpeg");
    println!("cargo:rerun-if-changed=image.c");
    println!("cargo:rerun-if-changed=image.h");
}
