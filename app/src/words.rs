//! How counts read on the pages: "1 item", "2 items", never "1 items".

/// `n` and `noun`, the noun in the plural unless `n` is 1 (every noun the pages count takes
/// an "s").
pub fn count(n: impl Into<i64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(count(1, "item"), "1 item");
        assert_eq!(count(0, "skip"), "0 skips");
        assert_eq!(count(7_i32, "prompt"), "7 prompts");
    }
}
