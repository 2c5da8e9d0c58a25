//! The `cookie` crate as the oracle of [`presented`]'s cookie reading (`find_cookie`, then
//! `classify`): a property test over random `Cookie` headers, and the cases where the two
//! legitimately differ, pinned one by one.
//!
//! The property: for any set of `Cookie` fields, our reading of the session cookie is what
//! `cookie::Cookie::split_parse` finds, field by field, for that name:
//!
//! - no value: [`Presented::Nothing`];
//! - one distinct value (however often repeated, in however many fields): that value, a
//!   [`Presented::Token`] if it is a well-formed token and [`Presented::Malformed`] if not;
//! - two or more distinct values: [`Presented::Ambiguous`], whose candidates are the
//!   well-formed ones among the first `MAX_CANDIDATES` distinct values, in order.
//!
//! Values are compared as `Cookie::value` gives them: raw, quotes kept (the algorithm of
//! RFC 6265 §5.2 strips none either), not percent-decoded. That a found value is then refused as a token (a
//! quoted token, a `%41`, spare bits set) is token syntax, applied alike to both sides by
//! `SessionToken::parse_bytes`: it is not a difference in what is found.
//!
//! Where the two legitimately differ, the oracle is given its input in a form that makes it
//! read the bytes as RFC 6265 does, and the difference itself is pinned by a test:
//!
//! 1. **Whitespace.** RFC 6265 §5.2 (and 6265bis) strips only WSP (SP and HTAB) around a
//!    name or value, as we do; the crate trims with `str::trim`, every Unicode `White_Space`
//!    character, so it reads `\u{a0}__Host-id=V` as our cookie. A sibling subdomain can try
//!    to set a cookie of that name with a `Domain` (it has no prefix, so the prefix rules do
//!    not refuse it): read the crate's way, it would be a planted value of a `__Host-`
//!    cookie, the very thing the prefix prevents. We
//!    keep such characters as part of the name or value (a name that is not ours, a value
//!    that is not a token); the oracle sees each as an opaque private-use stand-in, so it
//!    does too. Test: `other_unicode_whitespace_is_part_of_the_name_or_value`.
//! 2. **Bytes that are not UTF-8.** Header values are bytes and we read them as bytes; the
//!    crate parses `&str` only. The oracle gets each byte of an invalid sequence as one
//!    private-use stand-in (never whitespace, `;` or `=`), so every pair keeps its bounds.
//!    Test: `bytes_that_are_not_utf8_elsewhere_change_nothing`.
//!
//! Nothing else is adjusted: names are compared byte for byte on both sides, pieces without
//! `=` or with an empty name count for neither, and several fields are read as their
//! concatenation (a user agent sends one field; HTTP/2 may split it, RFC 9113 §8.2.3).

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use sessionward_core::SessionToken;

use super::{MAX_CANDIDATES, Presented, Via, presented};
use crate::config::SessionConfig;

/// The default session cookie name, which the default configuration reads.
const NAME: &str = "__Host-id";

/// Every Unicode `White_Space` character that can occur in a header value besides SP and
/// HTAB (the other ASCII ones are control characters, which `HeaderValue` refuses).
/// `every_other_whitespace_is_listed` checks that the list is complete.
const OTHER_WHITESPACE: [char; 19] = [
    '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}',
    '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200a}', '\u{2028}', '\u{2029}',
    '\u{202f}', '\u{205f}', '\u{3000}',
];

/// Stand-ins are private-use characters: U+E000 + byte for a byte of an invalid sequence,
/// U+E100 + index for an entry of `OTHER_WHITESPACE`.
const BYTE_STAND_IN: u32 = 0xE000;
const SPACE_STAND_IN: u32 = 0xE100;

fn stand_in(base: u32, offset: usize) -> char {
    u32::try_from(offset)
        .ok()
        .and_then(|o| char::from_u32(base + o))
        .expect("a private-use character")
}

/// A `Cookie` field as text for the oracle (see the module docs), or `None` if the field
/// already holds a character of the stand-in range (the mapping would not be one to one).
fn oracle_text(field: &[u8]) -> Option<String> {
    let mut text = String::with_capacity(field.len());
    for chunk in field.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (BYTE_STAND_IN..SPACE_STAND_IN + 0x100).contains(&u32::from(c)) {
                return None;
            }
            match OTHER_WHITESPACE.iter().position(|&w| w == c) {
                Some(i) => text.push(stand_in(SPACE_STAND_IN, i)),
                None => text.push(c),
            }
        }
        for &b in chunk.invalid() {
            text.push(stand_in(BYTE_STAND_IN, usize::from(b)));
        }
    }
    Some(text)
}

/// The bytes a value of the oracle stands for.
fn original_bytes(value: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(value.len());
    for c in value.chars() {
        let code = u32::from(c);
        if (BYTE_STAND_IN..BYTE_STAND_IN + 0x100).contains(&code) {
            bytes.push(u8::try_from(code - BYTE_STAND_IN).expect("a byte"));
        } else if (SPACE_STAND_IN..SPACE_STAND_IN + 0x100).contains(&code) {
            let i = usize::try_from(code - SPACE_STAND_IN).expect("an index");
            let mut buf = [0; 4];
            bytes.extend_from_slice(OTHER_WHITESPACE[i].encode_utf8(&mut buf).as_bytes());
        } else {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    bytes
}

/// The distinct values the oracle finds for [`NAME`] across the fields, in the order first
/// seen; `None` if a field cannot be mapped (see [`oracle_text`]).
fn oracle_values(fields: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let mut values: Vec<Vec<u8>> = Vec::new();
    for field in fields {
        let text = oracle_text(field)?;
        // Errors are pieces without `=` or with an empty name: no cookie, for us too.
        for cookie in ::cookie::Cookie::split_parse(text.as_str()).flatten() {
            if cookie.name() == NAME {
                let value = original_bytes(cookie.value());
                if !values.contains(&value) {
                    values.push(value);
                }
            }
        }
    }
    Some(values)
}

/// What a reading comes to, comparable and printable (tokens exposed: these are test tokens).
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    Nothing,
    Malformed,
    Token(String),
    Ambiguous(Vec<String>),
    /// Anything that is not a cookie reading (a bearer one), which the cookie-only default
    /// configuration must never produce.
    NotCookie,
}

fn expected(values: &[Vec<u8>]) -> Reading {
    match values {
        [] => Reading::Nothing,
        [one] => SessionToken::parse_bytes(one)
            .map_or(Reading::Malformed, |t| Reading::Token(t.expose())),
        many => Reading::Ambiguous(
            many.iter()
                .take(MAX_CANDIDATES)
                .filter_map(|v| SessionToken::parse_bytes(v))
                .map(|t| t.expose())
                .collect(),
        ),
    }
}

fn ours(fields: &[Vec<u8>]) -> Reading {
    let mut headers = HeaderMap::new();
    for field in fields {
        headers.append(
            COOKIE,
            HeaderValue::from_bytes(field).expect("the generator makes valid field values"),
        );
    }
    match presented(&headers, &SessionConfig::default()) {
        Presented::Nothing => Reading::Nothing,
        Presented::Malformed { via: Via::Cookie } => Reading::Malformed,
        Presented::Token {
            token,
            via: Via::Cookie,
        } => Reading::Token(token.expose()),
        Presented::Ambiguous {
            via: Via::Cookie,
            candidates,
        } => Reading::Ambiguous(candidates.iter().map(SessionToken::expose).collect()),
        _ => Reading::NotCookie,
    }
}

/// A well-formed token: 42 characters of the alphabet and a last one whose two spare bits
/// are zero.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]"
}

/// A byte string of "odd" units: any visible ASCII (`;`, `=`, `"`, `,`, `%` and `\` among
/// them), SP, HTAB, some non-ASCII characters (Unicode spaces included) and lone bytes
/// 0x80-0xFF (mostly not UTF-8). Never a control character: `HeaderValue` refuses those.
fn odd_text(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    let unit = prop_oneof![
        8 => (0x21u8..=0x7e).prop_map(|b| vec![b]),
        1 => Just(b" ".to_vec()),
        1 => Just(b"\t".to_vec()),
        2 => prop::sample::select(vec!["é", "ß", "日", "\u{fffd}", "\u{a0}", "\u{2003}", "\u{feff}", "\u{200b}"])
            .prop_map(|s| s.as_bytes().to_vec()),
        2 => (0x80u8..=0xff).prop_map(|b| vec![b]),
    ];
    prop::collection::vec(unit, len).prop_map(|units| units.concat())
}

/// What goes around a name or a value: mostly nothing or WSP, sometimes another Unicode
/// space, or a character that looks like one and is not `White_Space` (U+FEFF, U+200B).
fn pad() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(Vec::new()),
        3 => prop::sample::select(vec![" ", "\t", "  ", " \t "]).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::sample::select(vec!["\u{a0}", "\u{2003}", "\u{3000}", "\u{85}", "\u{feff}", "\u{200b}"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(NAME.as_bytes().to_vec()),
        2 => prop::sample::select(vec![
            "__host-id", "__HOST-ID", "__Host-id2", "_Host-id", "__Host-i", "__Secure-id",
            "Host-id", "__Host-id\u{a0}", "\u{3000}__Host-id", "\"__Host-id\"", "__Host-id\u{feff}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        3 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}".prop_map(String::into_bytes),
        1 => odd_text(0..8),
    ]
}

/// A token of the pool, changed so that it is no longer one (or still is, for the first
/// mutation, which only pads it with WSP inside the pair).
fn mutated(token: String, how: u8, at: usize) -> Vec<u8> {
    let at = at % token.len();
    let mut t = token.into_bytes();
    match how % 9 {
        0 => [b"\t".as_slice(), &t, b" "].concat(),
        1 => [b"\"".as_slice(), &t, b"\""].concat(),
        2 => {
            t.truncate(t.len() - 1);
            t
        }
        3 => {
            t.push(b'A');
            t
        }
        4 => {
            // Spare bits set.
            if let Some(last) = t.last_mut() {
                *last = b'B';
            }
            t
        }
        5 => {
            t.insert(at, b' ');
            t
        }
        6 => [&t[..at], b"%41".as_slice(), &t[at + 1..]].concat(),
        7 => [&t, "\u{a0}".as_bytes()].concat(),
        _ => {
            t[at] = b'+';
            t
        }
    }
}

fn value(pool: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::sample::select(pool.clone()).prop_map(String::into_bytes),
        2 => (prop::sample::select(pool), any::<u8>(), any::<usize>())
            .prop_map(|(t, how, at)| mutated(t, how, at)),
        1 => Just(Vec::new()),
        2 => odd_text(0..16),
    ]
}

/// One `;`-separated piece: mostly a pair, sometimes an empty piece, a piece without `=`,
/// one with an empty name, or a run of other cookies.
fn piece(pool: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => (pad(), name(), pad(), pad(), value(pool.clone()), pad())
            .prop_map(|(a, n, b, c, v, d)| [a, n, b, b"=".to_vec(), c, v, d].concat()),
        1 => pad(),
        1 => odd_text(0..10),
        1 => (pad(), value(pool)).prop_map(|(p, v)| [p, b"=".to_vec(), v].concat()),
        1 => (1usize..120).prop_map(fillers),
    ]
}

/// `n` other cookies, `f0=v; f1=v; ...`: many pairs in one piece of the generator.
fn fillers(n: usize) -> Vec<u8> {
    let pairs: Vec<String> = (0..n).map(|i| format!("f{i}=v")).collect();
    pairs.join("; ").into_bytes()
}

/// One to three `Cookie` fields of up to twelve pieces each, over a pool of one to three
/// tokens (so that repeats with equal values and with distinct values are both common).
fn fields() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(token(), 1..=3).prop_flat_map(|pool| {
        let field = prop::collection::vec(piece(pool), 0..12);
        prop::collection::vec(field.prop_map(|pieces| pieces.join(&b';')), 1..=3)
    })
}

proptest! {
    /// Our reading of the session cookie is the oracle's (see the module docs).
    #[test]
    fn our_reading_is_the_cookie_crates(fields in fields()) {
        let values = oracle_values(&fields);
        prop_assume!(values.is_some(), "a field holds a stand-in character");
        let values = values.unwrap_or_default();
        prop_assert_eq!(ours(&fields), expected(&values));
    }
}

/// The generator reaches every outcome, each often: the property is not vacuously true of
/// headers that never carry the session cookie, or that always are ambiguous.
#[test]
fn the_generator_reaches_every_outcome() {
    let mut runner = TestRunner::deterministic();
    let strategy = fields();
    let mut counts = [0usize; 5];
    for _ in 0..2000 {
        let fields = strategy
            .new_tree(&mut runner)
            .expect("a value tree")
            .current();
        let i = match ours(&fields) {
            Reading::Nothing => 0,
            Reading::Malformed => 1,
            Reading::Token(_) => 2,
            Reading::Ambiguous(c) if c.is_empty() => 3,
            Reading::Ambiguous(_) => 4,
            Reading::NotCookie => unreachable!("a cookie-only configuration"),
        };
        counts[i] += 1;
    }
    assert!(counts.iter().all(|&n| n >= 50), "{counts:?}");
}

#[test]
fn every_other_whitespace_is_listed() {
    let missing: Vec<char> = ('\u{80}'..=char::MAX)
        .filter(|c| c.is_whitespace() && !OTHER_WHITESPACE.contains(c))
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
    assert!(OTHER_WHITESPACE.iter().all(|c| c.is_whitespace()));
}

fn field(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Difference 1 of the module docs: the crate, given the raw text, trims other Unicode
/// spaces; RFC 6265, we and the mapped oracle keep them.
#[test]
fn other_unicode_whitespace_is_part_of_the_name_or_value() {
    let t = SessionToken::generate().expect("rng").expose();
    let u = SessionToken::generate().expect("rng").expose();
    let raw_values = |s: &str| -> Vec<String> {
        ::cookie::Cookie::split_parse(s)
            .flatten()
            .filter(|c| c.name() == NAME)
            .map(|c| c.value().to_owned())
            .collect()
    };
    for ws in OTHER_WHITESPACE {
        // A trailing space in the value: the crate reads the token; we read a value that is
        // not one.
        let header = format!("{NAME}={t}{ws}");
        assert_eq!(raw_values(&header), vec![t.clone()], "{ws:?}");
        assert_eq!(ours(&[field(&header)]), Reading::Malformed, "{ws:?}");
        // A leading space in the name: the crate reads our cookie; for us (and browsers,
        // which stored it under that name) it is another cookie.
        let header = format!("{ws}{NAME}={t}");
        assert_eq!(raw_values(&header), vec![t.clone()], "{ws:?}");
        assert_eq!(ours(&[field(&header)]), Reading::Nothing, "{ws:?}");
        // So a look-alike planted beside the real cookie neither hides nor replaces it.
        let header = format!("{NAME}={t}; {ws}{NAME}={u}");
        assert_eq!(raw_values(&header), vec![t.clone(), u.clone()], "{ws:?}");
        assert_eq!(ours(&[field(&header)]), Reading::Token(t.clone()), "{ws:?}");
        // The mapped oracle agrees with us in all three.
        for header in [
            format!("{NAME}={t}{ws}"),
            format!("{ws}{NAME}={t}"),
            format!("{NAME}={t}; {ws}{NAME}={u}"),
        ] {
            let fields = [field(&header)];
            assert_eq!(
                expected(&oracle_values(&fields).expect("mappable")),
                ours(&fields)
            );
        }
    }
}

/// Difference 2 of the module docs: bytes that are not UTF-8, in another cookie or in the
/// session cookie's own value.
#[test]
fn bytes_that_are_not_utf8_elsewhere_change_nothing() {
    let t = SessionToken::generate().expect("rng").expose();
    let other = [
        b"a=\xff\xfe; ".as_slice(),
        format!("{NAME}={t}").as_bytes(),
        b"; b=\xc3",
    ]
    .concat();
    assert!(std::str::from_utf8(&other).is_err());
    let fields = [other];
    assert_eq!(ours(&fields), Reading::Token(t.clone()));
    assert_eq!(
        expected(&oracle_values(&fields).expect("mappable")),
        Reading::Token(t)
    );
    // In the session cookie's value: a value that is not a token, and two such values that
    // differ only in their invalid bytes are two values.
    let two = [
        format!("{NAME}=").as_bytes(),
        b"\xff; ",
        format!("{NAME}=").as_bytes(),
        b"\xfe",
    ]
    .concat();
    let fields = [two];
    assert_eq!(ours(&fields), Reading::Ambiguous(Vec::new()));
    assert_eq!(
        expected(&oracle_values(&fields).expect("mappable")),
        Reading::Ambiguous(Vec::new())
    );
}
