//! [`safe_next`]: the only `next` values a sign-in flow may redirect to.

/// The longest `next` accepted, in bytes. Longer values are refused, not truncated.
pub(crate) const MAX_NEXT: usize = 2048;

/// Returns `next` if it is a same-origin relative path that is safe to redirect to after
/// sign-in, `None` otherwise (redirect to a default page instead).
///
/// Accepted: a path that starts with a single `/`, optionally followed by a query and a
/// fragment, made of visible ASCII, at most 2048 bytes. Refused, because some browser, proxy or
/// framework reads them as another origin or another path than they seem:
///
/// - anything not starting with `/`: absolute URLs (`https://evil.example`), schemes
///   (`javascript:`, `data:`), bare hosts, relative paths;
/// - `//host` and `/\host` (scheme-relative URLs; browsers treat `\` as `/`), and any `//` or
///   `\` later in the path;
/// - control characters, spaces and non-ASCII (browsers strip tabs and newlines inside URLs,
///   so `/\t/evil.example` becomes `//evil.example`);
/// - in the path, percent-encoded `/`, `\`, `%`, controls and spaces (`/%2F/evil.example`,
///   `/%5Cevil`, `/%252F`, `/%09/`), which a second decoding anywhere turns into the cases
///   above; malformed escapes anywhere;
/// - `<`, `>`, `"`, `'` and `` ` ``, so the value cannot break out of an HTML attribute.
///
/// ```
/// use sessionward::safe_next;
///
/// assert_eq!(safe_next("/account?tab=security"), Some("/account?tab=security"));
/// assert_eq!(safe_next("//evil.example"), None);
/// assert_eq!(safe_next("/\\evil.example"), None);
/// assert_eq!(safe_next("/%2F/evil.example"), None);
/// assert_eq!(safe_next("https://evil.example"), None);
/// ```
#[must_use]
pub fn safe_next(next: &str) -> Option<&str> {
    let bytes = next.as_bytes();
    if bytes.len() > MAX_NEXT || bytes.first() != Some(&b'/') {
        return None;
    }
    // The path ends at the first `?` or `#`; `//` is refused there.
    let path_end = bytes
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !b.is_ascii_graphic() || matches!(b, b'\\' | b'<' | b'>' | b'"' | b'\'' | b'`') {
            return None;
        }
        if b == b'/' && i + 1 < path_end && bytes[i + 1] == b'/' {
            return None;
        }
        if b == b'%' {
            let decoded = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())?;
            let in_path = i < path_end;
            if in_path && (decoded <= b' ' || matches!(decoded, b'/' | b'\\' | b'%' | 0x7f)) {
                return None;
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    /// Open-redirect payloads: every one must be refused.
    const PAYLOADS: &[&str] = &[
        "",
        "//evil.example",
        "///evil.example",
        "////evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "https://evil.example",
        "http://evil.example/account",
        "HTTPS://evil.example",
        "http:evil.example",
        "https:/evil.example",
        "//evil.example/%2F..",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "evil.example",
        "evil.example/account",
        "account",
        ".evil.example",
        "@evil.example",
        "?next=//evil.example",
        "#//evil.example",
        "/%2F/evil.example",
        "/%2f/evil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%5cevil.example",
        "/%252F%252Fevil.example",
        "/%25%32%46evil.example",
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0D%0A/evil.example",
        "/%00/evil.example",
        "/%20/evil.example",
        "/%7F",
        "/%",
        "/%2",
        "/%zz",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/\0//evil.example",
        " //evil.example",
        "\t//evil.example",
        "/ /evil.example",
        "\u{0}/evil.example",
        "/\u{FF0F}evil.example",
        "/\u{3002}evil.example",
        "/\u{2028}/evil.example",
        "/account//evil.example",
        "/https://evil.example",
        "/\"><script>alert(1)</script>",
        "/'onmouseover='alert(1)",
        "/`x`",
        "//evil.example@good.example",
        "//good.example%2F@evil.example",
    ];

    #[test]
    fn refuses_every_open_redirect_payload() {
        assert!(PAYLOADS.len() >= 30);
        for p in PAYLOADS {
            assert_eq!(safe_next(p), None, "accepted {p:?}");
        }
        let long = format!("/{}", "a".repeat(super::MAX_NEXT));
        assert_eq!(safe_next(&long), None);
    }

    #[test]
    fn accepts_same_origin_paths() {
        for p in [
            "/",
            "/account",
            "/account?tab=security&x=1",
            "/account#password",
            "/a/b/c?next=%2Fx",
            "/search?q=a%20b",
            "/caf%C3%A9",
            "/account?redirect=//not-a-path-here",
            "/~user/page.html",
            "/a:b@c",
        ] {
            assert_eq!(safe_next(p), Some(p), "refused {p:?}");
        }
    }
}
