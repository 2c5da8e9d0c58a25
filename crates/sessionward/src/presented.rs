//! Reading the presented token from a request: the session cookie and, when enabled, the
//! `Authorization: Bearer` header. Never the URL, the body or any other header (SEC-07).

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use sessionward_core::SessionToken;

use crate::config::SessionConfig;

/// How the token arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    Cookie,
    Bearer,
}

/// What the request presented.
#[derive(Debug)]
pub(crate) enum Presented {
    /// No token.
    Nothing,
    /// A value that is not a well-formed token (wrong length, alphabet or spare bits).
    Malformed { via: Via },
    /// Two or more different values (cookie tossing, or a cookie and a bearer token that
    /// disagree): no session. The well-formed ones are kept, only so that a logout can end
    /// them all.
    Ambiguous {
        via: Via,
        candidates: Vec<SessionToken>,
    },
    /// One well-formed token.
    Token { token: SessionToken, via: Via },
}

impl Presented {
    pub(crate) fn via_cookie(&self) -> bool {
        matches!(
            self,
            Self::Malformed { via: Via::Cookie }
                | Self::Ambiguous {
                    via: Via::Cookie,
                    ..
                }
                | Self::Token {
                    via: Via::Cookie,
                    ..
                }
        )
    }

    pub(crate) fn via_bearer(&self) -> bool {
        matches!(
            self,
            Self::Token {
                via: Via::Bearer,
                ..
            } | Self::Malformed { via: Via::Bearer }
        )
    }

    /// Whether the request presented anything in the place of a session ID.
    pub(crate) fn presents_id(&self) -> bool {
        !matches!(self, Self::Nothing)
    }

    pub(crate) fn token(&self) -> Option<&SessionToken> {
        match self {
            Self::Token { token, .. } => Some(token),
            _ => None,
        }
    }

    /// The keys of every well-formed ID presented: the one, or the candidates of an
    /// ambiguous request.
    pub(crate) fn candidate_keys(&self) -> Vec<sessionward_core::SessionKey> {
        match self {
            Self::Token { token, .. } => vec![token.key()],
            Self::Ambiguous { candidates, .. } => {
                candidates.iter().map(SessionToken::key).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// At most this many well-formed candidates of an ambiguous request are kept for logout.
const MAX_CANDIDATES: usize = 4;

/// One source's reading.
enum Found<'a> {
    None,
    One(&'a [u8]),
    /// Different values; the distinct ones seen (at most `MAX_CANDIDATES`).
    Many(Seen<'a>),
}

/// The distinct values seen, without allocating (at most `MAX_CANDIDATES`).
#[derive(Default)]
struct Seen<'a> {
    values: [&'a [u8]; MAX_CANDIDATES],
    len: usize,
}

impl<'a> Seen<'a> {
    fn add(&mut self, value: &'a [u8]) {
        if self.len < MAX_CANDIDATES && !self.values[..self.len].contains(&value) {
            self.values[self.len] = value;
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.values[..self.len].iter().copied()
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The value(s) of the cookie named `name`, across every `Cookie` field (HTTP/2 sends one
/// field per pair). Identical repeats collapse; different values are `Many`.
///
/// Every pair is examined, however many there are: there is no pair cap. The work is one pass
/// over the bytes of the `Cookie` fields, which the HTTP server already bounds (its header
/// size limit), and nothing is allocated. A cap would have to either stop before a session
/// cookie sent late (a valid session treated as absent, or a second, different value missed)
/// or call the request ambiguous and clear a valid session; neither is acceptable, so the
/// number of other cookies never changes what the request presents.
///
/// The separators are found with `memchr` (the vectorised search that `axum` and `serde_json`
/// already bring), not byte by byte: that saves about 350 instructions on a request whose
/// field holds only the session cookie, and more with every other cookie a browser sends.
fn find_cookie<'a>(headers: &'a HeaderMap, name: &[u8]) -> Found<'a> {
    let mut found = Seen::default();
    for field in headers.get_all(COOKIE) {
        let bytes = field.as_bytes();
        let mut start = 0;
        for end in memchr::memchr_iter(b';', bytes).chain([bytes.len()]) {
            let pair = &bytes[start..end];
            start = end + 1;
            let Some(eq) = memchr::memchr(b'=', pair) else {
                continue;
            };
            // Names match byte for byte: `__host-id` is not `__Host-id`.
            if trim(&pair[..eq]) != name {
                continue;
            }
            found.add(trim(&pair[eq + 1..]));
        }
    }
    match found.len {
        0 => Found::None,
        1 => Found::One(found.values[0]),
        _ => Found::Many(found),
    }
}

fn find_bearer(headers: &HeaderMap) -> Found<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Found::None;
    };
    if values.next().is_some() {
        return Found::Many(Seen::default());
    }
    let v = first.as_bytes();
    // The scheme is case-insensitive (RFC 9110 §11.1); other schemes are not ours.
    if v.len() < 7 || !v[..7].eq_ignore_ascii_case(b"bearer ") {
        return Found::None;
    }
    Found::One(trim(&v[7..]))
}

fn classify(found: Found<'_>, via: Via) -> Presented {
    match found {
        Found::None => Presented::Nothing,
        Found::Many(values) => Presented::Ambiguous {
            via,
            candidates: values
                .iter()
                .filter_map(SessionToken::parse_bytes)
                .collect(),
        },
        Found::One(v) => match SessionToken::parse_bytes(v) {
            Some(token) => Presented::Token { token, via },
            None => Presented::Malformed { via },
        },
    }
}

/// Reads what the request presents, per the configured transport.
pub(crate) fn presented(headers: &HeaderMap, config: &SessionConfig) -> Presented {
    let transport = config.transport;
    let cookie = if transport.cookie() {
        classify(
            find_cookie(headers, config.cookie_name.as_bytes()),
            Via::Cookie,
        )
    } else {
        Presented::Nothing
    };
    let bearer = if transport.bearer() {
        classify(find_bearer(headers), Via::Bearer)
    } else {
        Presented::Nothing
    };
    match (cookie, bearer) {
        (p, Presented::Nothing) | (Presented::Nothing, p) => p,
        (
            Presented::Token {
                token: a,
                via: Via::Cookie,
            },
            Presented::Token { token: b, .. },
        ) if a == b => Presented::Token {
            token: a,
            via: Via::Cookie,
        },
        (a, b) => {
            let mut candidates = Vec::new();
            for p in [a, b] {
                match p {
                    Presented::Token { token, .. } => candidates.push(token),
                    Presented::Ambiguous { candidates: c, .. } => candidates.extend(c),
                    _ => {}
                }
            }
            Presented::Ambiguous {
                via: Via::Cookie,
                candidates,
            }
        }
    }
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use http::HeaderValue;

    fn headers(cookies: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(
                COOKIE,
                HeaderValue::from_bytes(c).expect("valid header bytes"),
            );
        }
        h
    }

    fn cfg() -> SessionConfig {
        SessionConfig::default()
    }

    #[test]
    fn reads_the_named_cookie_among_others() {
        let t = SessionToken::generate().expect("rng").expose();
        let h = headers(&[format!("a=1; __Host-id={t}; b=2").as_bytes()]);
        assert!(matches!(
            presented(&h, &cfg()),
            Presented::Token {
                via: Via::Cookie,
                ..
            }
        ));
        // Split across fields, and repeated with the same value: fine.
        let h = headers(&[
            b"a=1",
            format!("__Host-id={t}").as_bytes(),
            format!("__Host-id={t}").as_bytes(),
        ]);
        assert!(matches!(presented(&h, &cfg()), Presented::Token { .. }));
    }

    #[test]
    fn distinct_values_are_ambiguous() {
        let a = SessionToken::generate().expect("rng").expose();
        let b = SessionToken::generate().expect("rng").expose();
        let h = headers(&[format!("__Host-id={a}; __Host-id={b}").as_bytes()]);
        assert!(matches!(presented(&h, &cfg()), Presented::Ambiguous { .. }));
        let h = headers(&[
            format!("__Host-id={a}").as_bytes(),
            format!("__Host-id={b}").as_bytes(),
        ]);
        assert!(matches!(presented(&h, &cfg()), Presented::Ambiguous { .. }));
        // A malformed duplicate beside a valid one is ambiguous too, never "the valid one".
        let h = headers(&[format!("__Host-id={a}; __Host-id=x").as_bytes()]);
        assert!(matches!(presented(&h, &cfg()), Presented::Ambiguous { .. }));
    }

    #[test]
    fn names_match_byte_for_byte() {
        let t = SessionToken::generate().expect("rng").expose();
        for name in ["__host-id", "__HOST-ID", "__Secure-id", "id", "__Host-id2"] {
            let h = headers(&[format!("{name}={t}").as_bytes()]);
            assert!(
                matches!(presented(&h, &cfg()), Presented::Nothing),
                "{name}"
            );
        }
    }

    #[test]
    fn catalogue_of_bad_input_never_yields_a_token() {
        let t = SessionToken::generate().expect("rng").expose();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b";;;".to_vec(),
            b"=".to_vec(),
            b"__Host-id".to_vec(),
            b"__Host-id=".to_vec(),
            b"__Host-id==x".to_vec(),
            format!("__Host-id=\"{t}\"").into_bytes(),
            format!("__Host-id={}", &t[..42]).into_bytes(),
            format!("__Host-id={t}A").into_bytes(),
            format!("__Host-id={}", "A".repeat(4096)).into_bytes(),
            format!("__Host-id=%41{}", &t[3..]).into_bytes(),
            b"__Host-id=' OR '1'='1".to_vec(),
            [b"__Host-id=".as_slice(), &[0xC3, 0xA9], &t.as_bytes()[2..]].concat(),
            "a=b; ".repeat(300).into_bytes(),
        ];
        for c in cases {
            let h = headers(&[&c]);
            assert!(
                presented(&h, &cfg()).token().is_none(),
                "{:?}",
                String::from_utf8_lossy(&c)
            );
        }
    }

    #[test]
    fn many_other_cookies_never_hide_or_end_a_session() {
        let t = SessionToken::generate().expect("rng").expose();
        let other = SessionToken::generate().expect("rng").expose();
        let filler = "a=b; ".repeat(1000);
        // The session cookie after, before and among a thousand others: still the session.
        for c in [
            format!("{filler}__Host-id={t}"),
            format!("__Host-id={t}; {filler}"),
            format!("{filler}__Host-id={t}; {filler}__Host-id={t}"),
        ] {
            let h = headers(&[c.as_bytes()]);
            assert_eq!(
                presented(&h, &cfg()).token().map(SessionToken::expose),
                Some(t.clone())
            );
        }
        // Split over many fields too.
        let mut fields: Vec<Vec<u8>> = (0..300).map(|i| format!("c{i}=v").into_bytes()).collect();
        fields.push(format!("__Host-id={t}").into_bytes());
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        assert!(presented(&headers(&refs), &cfg()).token().is_some());
        // Only fillers: no session, and nothing to clear.
        let h = headers(&[filler.as_bytes()]);
        let p = presented(&h, &cfg());
        assert!(matches!(p, Presented::Nothing) && !p.via_cookie());
        // A different value however far behind the first is still seen: ambiguous.
        let h = headers(&[format!("__Host-id={t}; {filler}__Host-id={other}").as_bytes()]);
        assert!(matches!(presented(&h, &cfg()), Presented::Ambiguous { .. }));
    }

    #[test]
    fn bearer_only_when_enabled() {
        let t = SessionToken::generate().expect("rng").expose();
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).expect("header"),
        );
        assert!(matches!(presented(&h, &cfg()), Presented::Nothing));
        let both = SessionConfig::builder()
            .transport(Transport::CookieAndBearer)
            .build()
            .expect("config");
        assert!(matches!(
            presented(&h, &both),
            Presented::Token {
                via: Via::Bearer,
                ..
            }
        ));
        // A cookie and a bearer token that disagree: no session.
        let other = SessionToken::generate().expect("rng").expose();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("__Host-id={other}")).expect("header"),
        );
        assert!(matches!(presented(&h, &both), Presented::Ambiguous { .. }));
        // Basic auth is not a session token.
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cGFzcw=="),
        );
        assert!(matches!(presented(&h, &both), Presented::Nothing));
    }
}
