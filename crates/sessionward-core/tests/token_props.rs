//! Property tests of token parsing (SEC-02, SEC-10).

use std::collections::HashSet;

use proptest::prelude::*;
use sessionward_core::{SessionToken, TOKEN_LEN};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Any string parses as a token only if the token encodes back to exactly that string.
    #[test]
    fn parses_only_if_round_trips(s in any::<String>()) {
        if let Some(t) = SessionToken::parse(&s) {
            prop_assert_eq!(t.expose(), s);
        }
    }

    /// The same for strings drawn from the alphabet at the right length, where a quarter of
    /// the inputs are canonical and the rest differ only in the spare bits.
    #[test]
    fn alphabet_strings_round_trip_or_are_refused(s in "[A-Za-z0-9_-]{43}") {
        match SessionToken::parse(&s) {
            Some(t) => prop_assert_eq!(t.expose(), s),
            None => {
                // Refused only because the two spare bits of the last character are set.
                let last = s.as_bytes()[TOKEN_LEN - 1];
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let idx = alphabet.iter().position(|&c| c == last).unwrap_or(0);
                prop_assert_ne!(idx & 0b11, 0);
            }
        }
    }

    /// Parsing arbitrary bytes (not UTF-8, NUL, obs-text, any length) never panics, and
    /// whatever it accepts round-trips.
    #[test]
    fn parsing_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Some(t) = SessionToken::parse_bytes(&b) {
            prop_assert_eq!(t.expose().into_bytes(), b);
        }
    }
}

#[test]
fn hundred_thousand_tokens_are_distinct() {
    let mut seen = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = SessionToken::generate().expect("OS RNG");
        let s = t.expose();
        assert_eq!(s.len(), TOKEN_LEN);
        assert!(seen.insert(s), "duplicate token");
    }
    assert_eq!(seen.len(), 100_000);
}
