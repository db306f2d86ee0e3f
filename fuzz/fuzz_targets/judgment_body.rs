//! The body of `POST /api/v1/assignments/{id}/judgment`, under every campaign setting.
#![no_main]

use domain::{JudgmentInput, JudgmentRules, RationalePolicy};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<JudgmentInput>(data) else {
        return;
    };
    for rationale in [
        RationalePolicy::Off,
        RationalePolicy::Optional,
        RationalePolicy::Required,
    ] {
        for (allow_tie, allow_both_bad, strength_scale) in [(true, true, 3), (false, false, 0)] {
            let rules = JudgmentRules {
                allow_tie,
                allow_both_bad,
                strength_scale,
                rationale,
            };
            let _ = input.clone().validated(&rules);
        }
    }
});
