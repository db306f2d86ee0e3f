// Embed an rpath to libtorch's lib dir so tests, examples and benches run
// without LD_LIBRARY_PATH. libtorch's own RPATH ($ORIGIN/../../nvidia/cu13/lib)
// then finds cudart/cupti beside it.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
