//! The body of `POST /api/v1/exports`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<domain::ExportSpec>(data) {
        let _ = spec.validated();
    }
});
