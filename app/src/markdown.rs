//! Markdown to safe HTML for guidelines, prompts and responses (server side only).

use std::borrow::Cow;
use std::sync::LazyLock;

use pulldown_cmark::{html, CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};
use syntect::html::{ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

/// The grammars code blocks are highlighted with (Sublime Text's defaults, loaded once).
static SYNTAXES: LazyLock<SyntaxSet> = LazyLock::new(SyntaxSet::load_defaults_newlines);

/// Highlighted code gets classes with this prefix, styled in `style/main.css`.
const CLASS_STYLE: ClassStyle = ClassStyle::SpacedPrefixed { prefix: "hl-" };

/// The classes kept on highlighted code: the scopes the stylesheet colours.
const HIGHLIGHT_CLASSES: &[&str] = &[
    "hl-comment",
    "hl-string",
    "hl-constant",
    "hl-numeric",
    "hl-keyword",
    "hl-storage",
    "hl-entity",
    "hl-function",
    "hl-type",
    "hl-support",
    "hl-variable",
    "hl-operator",
    "hl-punctuation",
    "hl-tag",
    "hl-attribute-name",
    "hl-escape",
];

/// Largest code block highlighted, and its longest line: rendering runs on every item shown,
/// and the grammars' regexes are slow on huge input, so bigger blocks stay plain.
const MAX_HIGHLIGHT_BYTES: usize = 64 << 10;
const MAX_HIGHLIGHT_LINE: usize = 2_000;

/// A fenced code block's text as highlighted HTML, when its language is known.
fn highlighted(language: &str, code: &str) -> Option<String> {
    if code.len() > MAX_HIGHLIGHT_BYTES || code.lines().any(|l| l.len() > MAX_HIGHLIGHT_LINE) {
        return None;
    }
    let token = language.split_whitespace().next()?;
    let syntax = SYNTAXES.find_syntax_by_token(token)?;
    let mut generator = ClassedHTMLGenerator::new_with_class_style(syntax, &SYNTAXES, CLASS_STYLE);
    for line in LinesWithEndings::from(code) {
        generator
            .parse_html_for_line_which_includes_newline(line)
            .ok()?;
    }
    Some(format!(
        "<pre><code class=\"hl-code\">{}</code></pre>\n",
        generator.finalize()
    ))
}

/// Replaces each fenced code block in a known language by its highlighted HTML (sanitised
/// afterwards with the rest); other blocks pass through as they are.
fn highlight_code<'a>(events: impl Iterator<Item = Event<'a>>) -> Vec<Event<'a>> {
    let mut out = Vec::new();
    let mut block: Option<(CowStr<'a>, String, Vec<Event<'a>>)> = None;
    for event in events {
        match (&mut block, event) {
            (None, Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(language)))) => {
                let start = Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(language.clone())));
                block = Some((language, String::new(), vec![start]));
            }
            (Some((_, code, held)), Event::Text(text)) => {
                code.push_str(&text);
                held.push(Event::Text(text));
            }
            (Some(_), Event::End(TagEnd::CodeBlock)) => {
                if let Some((language, code, mut held)) = block.take() {
                    match highlighted(&language, &code) {
                        Some(html) => out.push(Event::Html(html.into())),
                        None => {
                            held.push(Event::End(TagEnd::CodeBlock));
                            out.append(&mut held);
                        }
                    }
                }
            }
            (Some((_, _, held)), other) => held.push(other),
            (None, other) => out.push(other),
        }
    }
    out
}

/// Inline raster images, the only images kept: an image fetched from another site tells that
/// site who is reading and when, and one from this site would make the viewer's browser
/// send a request with their cookie (`![](/api/v1/campaigns/X/next)`).
fn is_inline_image(url: &str) -> bool {
    let url = url.trim_start().to_ascii_lowercase();
    ["png", "jpeg", "gif", "webp"]
        .iter()
        .any(|kind| url.starts_with(&format!("data:image/{kind};base64,")))
}

/// Drops image sources that are not inline images, and `data:` links (a page in a link).
fn keep_url<'u>(element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
    // As URL parsers read it: tabs, newlines and control characters do not count.
    let scheme: String = value
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .take(5)
        .collect();
    let data = scheme.eq_ignore_ascii_case("data:");
    match (element, attribute) {
        ("img", "src") => is_inline_image(value).then_some(Cow::Borrowed(value)),
        _ if data => None,
        _ => Some(Cow::Borrowed(value)),
    }
}

/// Renders CommonMark (with tables and strike-through) and strips anything active:
/// scripts, event handlers, `javascript:` links, styles, and images that are not inline
/// `data:` images. Raw HTML in the input is sanitised, not trusted. A single line break is
/// kept as a line break (CommonMark would join the lines): model output is written that way,
/// and a poem or an address must keep its lines.
pub fn render(text: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut unsafe_html = String::with_capacity(text.len() * 3 / 2);
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::SoftBreak => Event::HardBreak,
        other => other,
    });
    html::push_html(&mut unsafe_html, highlight_code(events).into_iter());
    ammonia::Builder::default()
        .add_allowed_classes("span", HIGHLIGHT_CLASSES)
        .add_allowed_classes("code", &["hl-code"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .add_url_schemes(&["data"])
        .attribute_filter(keep_url)
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn code_blocks_are_highlighted_by_language() {
        let html = render("```rust\n// hi\nfn main() { let s = \"x\"; }\n```");
        assert!(html.contains(r#"<code class="hl-code">"#), "{html}");
        assert!(html.contains(r#"<span class="hl-comment">"#), "{html}");
        assert!(html.contains(r#"<span class="hl-string">"#), "{html}");
        assert!(
            html.contains(r#"<span class="hl-storage hl-type hl-function">fn</span>"#),
            "{html}"
        );
        // An unknown language, or none, is plain code; markup inside stays text.
        let plain = render("```nosuchlanguage\n<b>x</b>\n```");
        assert_eq!(
            plain,
            "<pre><code class=\"\">&lt;b&gt;x&lt;/b&gt;\n</code></pre>\n"
        );
        // A huge block stays plain.
        let huge = render(&format!("```rust\nlet x = \"{}\";\n```", "y".repeat(3_000)));
        assert!(!huge.contains("hl-code"), "a huge block was highlighted");
        // Highlighting escapes the code it wraps.
        let escaped = render("```html\n<script>alert(1)</script>\n```");
        assert!(!escaped.contains("<script"), "{escaped}");
    }

    #[test]
    fn single_line_breaks_stay() {
        let html = render("Roses are red,\nviolets are blue.\n\nA new paragraph.");
        assert_eq!(
            html,
            "<p>Roses are red,<br>\nviolets are blue.</p>\n<p>A new paragraph.</p>\n"
        );
    }

    #[test]
    fn scripts_and_handlers_are_removed() {
        let html = render(
            "<script>alert(1)</script><img src=x onerror=\"alert(2)\">\n\n[x](javascript:alert(3))",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert(1)"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("href=\"javascript:"), "{html}");
        assert!(html.contains("<img>"), "{html}");
    }

    #[test]
    fn only_inline_images_are_kept() {
        let pixel = "data:image/png;base64,iVBORw0KGgo=";
        for url in [
            "https://tracker.example/pixel.png",
            "//tracker.example/pixel.png",
            "/api/v1/campaigns/0193/next",
            "next",
            "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
            "data:text/html;base64,PHNjcmlwdD4=",
        ] {
            let html = render(&format!("![x]({url})"));
            assert!(!html.contains("src="), "{url}: {html}");
        }
        let html = render(&format!("![a pixel]({pixel})"));
        assert!(html.contains(&format!("src=\"{pixel}\"")), "{html}");
        let html = render("<img src=\"https://tracker.example/p.png\" srcset=\"https://tracker.example/p.png 2x\">");
        assert!(!html.contains("tracker"), "{html}");
        let html =
            render("<a href=\"da&#9;ta:text/html,x\">t</a> <a href=\"&#1;data:text/html,x\">c</a>");
        assert!(
            !html.contains("data:") && !html.contains("ta:text"),
            "{html}"
        );
        let html = render("[page](data:text/html,hello) [site](https://example.org)");
        assert!(!html.contains("data:"), "{html}");
        assert!(html.contains("href=\"https://example.org\""), "{html}");
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
