//! A model's chat template (from GGUF metadata or `tokenizer_config.json`, so untrusted),
//! rendered by `engine::chat::render` as generation does. The input is the template, a NUL
//! byte, then the messages as JSON (`[{"role": ..., "content": ...}]`; one user turn when
//! absent or not valid). A template may fail to render, but must not panic, hang or exhaust
//! memory: run with `-timeout` and `-rss_limit_mb` to catch the last two.
#![no_main]

use domain::Message;
use std::sync::OnceLock;

/// With `PAIRWISE_FUZZ_VERBOSE` set, each input prints what it rendered (to check the seeds).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PAIRWISE_FUZZ_VERBOSE").is_some())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (template, messages) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let messages: Vec<Message> = serde_json::from_slice(messages).unwrap_or_else(|_| {
        vec![Message {
            role: "user".into(),
            content: "Hello!".into(),
        }]
    });
    let add_generation_prompt = data.len() % 2 == 0;
    let rendered = engine::chat::render(template, &messages, add_generation_prompt, "<s>", "</s>");
    if verbose() {
        match &rendered {
            Ok(s) => eprintln!(
                "rendered {} bytes: {:?}",
                s.len(),
                &s[..s.floor_char_boundary(300)]
            ),
            Err(e) => eprintln!("error: {e}"),
        }
    }
});
