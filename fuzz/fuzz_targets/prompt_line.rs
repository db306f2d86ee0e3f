//! One line of a prompt import (plain text or JSON).
#![no_main]

libfuzzer_sys::fuzz_target!(|line: &str| {
    let _ = domain::parse_prompt_line(line);
});
