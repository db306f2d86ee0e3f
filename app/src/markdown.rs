//! Markdown to safe HTML for guidelines, prompts and responses (server side only).

use pulldown_cmark::{html, Options, Parser};

/// Renders CommonMark (with tables and strike-through) and strips anything active:
/// scripts, event handlers, `javascript:` links, styles. Raw HTML in the input is sanitised,
/// not trusted.
pub fn render(text: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut unsafe_html = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(text, options));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn scripts_and_handlers_are_removed() {
        let html = render(
            "<script>alert(1)</script><img src=x onerror=\"alert(2)\">\n\n[x](javascript:alert(3))",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert(1)"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("href=\"javascript:"), "{html}");
        assert!(html.contains("<img src=\"x\">"), "{html}");
    }

    #[test]
    fn markdown_and_code_render() {
        let html =
            render("**bold**\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<pre><code"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }
}
