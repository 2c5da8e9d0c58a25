//! Property tests of token parsing (SEC-02, SEC-10).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use sessionward_core::{SessionHandle, SessionToken, TOKEN_LEN};

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

    /// The handle's text is the `base64` crate's unpadded base64url of its bytes (an
    /// independent encoder checks the hand-written one), and parses back.
    #[test]
    fn handle_text_is_base64url(b in any::<[u8; 16]>()) {
        let h = SessionHandle::from_bytes(b);
        let text = h.to_string();
        prop_assert_eq!(&text, &URL_SAFE_NO_PAD.encode(b));
        prop_assert_eq!(SessionHandle::parse(&text), Some(h));
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

/// SEC-01 / WSTG-SESS-01: 10,000 IDs show no bias. Monobit, byte-frequency chi-square and
/// runs tests, with thresholds at about one false alarm in a million runs.
#[test]
fn ten_thousand_tokens_pass_randomness_tests() {
    let mut bytes = Vec::with_capacity(10_000 * 32);
    for _ in 0..10_000 {
        let t = SessionToken::generate().expect("OS RNG");
        let back = SessionToken::parse(&t.expose()).expect("round trip");
        assert_eq!(back, t);
        // The 32 bytes, recovered from the encoding.
        let s = t.expose();
        let mut out = [0u8; 32];
        // Decoded by the `base64` crate: an independent check of the hand-written encoder.
        let n = URL_SAFE_NO_PAD.decode_slice(s, &mut out).expect("decode");
        assert_eq!(n, 32);
        bytes.extend_from_slice(&out);
    }
    let bits = (bytes.len() * 8) as f64;
    // Monobit: the share of ones is 1/2 within 5 standard deviations.
    let ones: u64 = bytes.iter().map(|b| u64::from(b.count_ones())).sum();
    let z = (ones as f64 - bits / 2.0) / (bits / 4.0).sqrt();
    assert!(z.abs() < 5.0, "monobit z = {z}");
    // Chi-square of byte values, 255 degrees of freedom: mean 255, sd ~22.6.
    let mut counts = [0u64; 256];
    for &b in &bytes {
        counts[usize::from(b)] += 1;
    }
    let expected = bytes.len() as f64 / 256.0;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    assert!(
        chi2 < 255.0 + 5.5 * (2.0f64 * 255.0).sqrt(),
        "chi-square = {chi2}"
    );
    assert!(
        chi2 > 255.0 - 5.5 * (2.0f64 * 255.0).sqrt(),
        "chi-square too good = {chi2}"
    );
    // Runs: the number of bit changes is n/2 within 5 standard deviations.
    let mut prev = bytes[0] & 1;
    let mut runs: u64 = 1;
    for &b in &bytes {
        for i in 0..8 {
            let bit = (b >> i) & 1;
            if bit != prev {
                runs += 1;
                prev = bit;
            }
        }
    }
    let zr = (runs as f64 - bits / 2.0) / (bits / 4.0).sqrt();
    assert!(zr.abs() < 5.0, "runs z = {zr}");
}
