// Embed an rpath to libtorch's lib dir so the engine's tests, examples and
// benches run without LD_LIBRARY_PATH. libtorch_cpu's own RPATH
// ($ORIGIN/../../nvidia/cu13/lib) then finds cudart/cupti beside it.
//
// The directory comes from torch-sys (DEP_TCH_LIBTORCH_LIB, whatever way it
// found libtorch), else `$LIBTORCH/lib`. It is re-exported as
// DEP_PAIRWISE_ENGINE_LIBTORCH_LIB to crates depending on `engine`, whose own
// build.rs must emit the rpath for their binaries (link args do not propagate).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok().or_else(|| {
        std::env::var("LIBTORCH")
            .ok()
            .map(|p| format!("{}/lib", p.trim_end_matches('/')))
    });
    if let Some(lib) = lib {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:libtorch_lib={lib}");
    }
}
