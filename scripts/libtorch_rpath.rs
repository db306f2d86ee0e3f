// The build script of every package with binaries or tests that link the engine (`server`,
// `bench`, `tests`, `ops`, and `app` under `ssr`): gives them an rpath to libtorch's lib dir (exported by the engine crate),
// so nobody has to set LD_LIBRARY_PATH. Link arguments of a library do not reach the binaries
// that use it, hence this script.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_PAIRWISE_ENGINE_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_PAIRWISE_ENGINE_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
