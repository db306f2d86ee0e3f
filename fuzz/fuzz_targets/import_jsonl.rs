//! One line of a JSONL item import, as `POST /api/v1/campaigns/{id}/items` reads it.
#![no_main]

libfuzzer_sys::fuzz_target!(|line: &str| {
    if let Ok(item) = domain::parse_jsonl_line(line) {
        // What parses is valid: at least two responses, pairs within them.
        assert!(item.responses.len() >= 2);
        assert!(item
            .pairs()
            .iter()
            .all(|(i, j)| *i < item.responses.len() && *j < item.responses.len()));
    }
});
