//! The Content-Security-Policy the pages work under (server side only): scripts only from
//! this site or carrying the page's nonce (the hydration script does), WebAssembly allowed to
//! compile, images only from this site or inline, no plugins, no framing, forms and `<base>`
//! only to this site. Inline style attributes stay allowed: they cannot run script.

/// The policy; `nonce` is the one this page's inline scripts carry (none outside pages).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let inline = nonce.map_or(String::new(), |n| format!(" 'nonce-{n}'"));
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{inline}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; \
         form-action 'self'"
    )
}

/// Sends the policy with this page's nonce, as the page is rendered.
pub fn send_page_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::content_security_policy;

    #[test]
    fn only_the_nonce_allows_inline_scripts() {
        let page = content_security_policy(Some("abc"));
        assert!(
            page.contains("script-src 'self' 'wasm-unsafe-eval' 'nonce-abc';"),
            "{page}"
        );
        assert!(
            !page.contains("unsafe-inline';") || page.contains("style-src 'self' 'unsafe-inline'")
        );
        assert!(page.contains("frame-ancestors 'none'"));
        let other = content_security_policy(None);
        assert!(!other.contains("nonce"), "{other}");
        assert!(!other
            .split(';')
            .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline")));
    }
}
