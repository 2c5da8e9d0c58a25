//! Whether a value's raw text is exactly what serde_json would write for it (compact, keys
//! sorted and unique, serde_json's escapes, integers in range): such text is copied, any other
//! is parsed and serialized.

use super::MAX_DEPTH;

/// What a value's raw text is, against what parsing and serializing it would give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// Exactly that text: copy it.
    Canonical,
    /// Something else (whitespace, other escapes, a float, unsorted keys...): parse it.
    Other,
    /// Nested deeper than [`MAX_DEPTH`]: leave it to the full parse.
    TooDeep,
}

/// Classifies `raw`, one value's text that serde_json has already checked for syntax.
pub(super) fn shape(raw: &str) -> Shape {
    let b = raw.as_bytes();
    match canonical_value(b, 0, 0) {
        Some(end) if end == b.len() => Shape::Canonical,
        _ if depth_exceeds(b, MAX_DEPTH) => Shape::TooDeep,
        _ => Shape::Other,
    }
}

/// The end of the canonical value at `i`, `None` if it is not canonical (or too deep).
pub(super) fn canonical_value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => canonical_string(b, i).map(|(end, _)| end),
        b'{' if depth < MAX_DEPTH => canonical_object(b, i, depth + 1),
        b'[' if depth < MAX_DEPTH => canonical_array(b, i, depth + 1),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => canonical_integer(b, i),
        _ => None,
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some(end)
}

/// The end of the string at `i` and whether it has escapes, if every escape in it is the one
/// serde_json writes for that character.
pub(super) fn canonical_string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j += b
            .get(j..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        match b[j] {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(j + 1)? {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' => {
                        // serde_json writes `\u00xx` (lowercase) for the control characters
                        // without a short escape, and nothing else as `\u`.
                        let hex = b.get(j + 2..j + 6)?;
                        let low = match hex {
                            [b'0', b'0', hi @ (b'0' | b'1'), lo] => {
                                let lo = match lo {
                                    b'0'..=b'9' => lo - b'0',
                                    b'a'..=b'f' => lo - b'a' + 10,
                                    _ => return None,
                                };
                                (hi - b'0') * 16 + lo
                            }
                            _ => return None,
                        };
                        if matches!(low, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return None;
                        }
                        j += 6;
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

fn canonical_object(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    let mut j = i + 1;
    if *b.get(j)? == b'}' {
        return Some(j + 1);
    }
    let mut prev: Option<&[u8]> = None;
    loop {
        if *b.get(j)? != b'"' {
            return None;
        }
        let (end, escaped) = canonical_string(b, j)?;
        // Keys must come sorted and unique, as the parsed map serializes them; compared as
        // raw bytes, which is their order only without escapes.
        let key = &b[j + 1..end - 1];
        if escaped || prev.is_some_and(|p| p >= key) {
            return None;
        }
        prev = Some(key);
        if *b.get(end)? != b':' {
            return None;
        }
        j = canonical_value(b, end + 1, depth)?;
        match *b.get(j)? {
            b',' => j += 1,
            b'}' => return Some(j + 1),
            _ => return None,
        }
    }
}

fn canonical_array(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    let mut j = i + 1;
    if *b.get(j)? == b']' {
        return Some(j + 1);
    }
    loop {
        j = canonical_value(b, j, depth)?;
        match *b.get(j)? {
            b',' => j += 1,
            b']' => return Some(j + 1),
            _ => return None,
        }
    }
}

/// An integer that parses as the `u64` or `i64` it reads as (a float, `-0` or one out of
/// range comes back otherwise).
fn canonical_integer(b: &[u8], i: usize) -> Option<usize> {
    let negative = b[i] == b'-';
    let digits = i + usize::from(negative);
    let end = digits
        + b[digits..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
    if end == digits
        || (b[digits] == b'0' && end > digits + 1)
        || matches!(b.get(end), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    let text = std::str::from_utf8(&b[i..end]).ok()?;
    let fits = if negative {
        b[digits] != b'0' && text.parse::<i64>().is_ok()
    } else {
        text.parse::<u64>().is_ok()
    };
    fits.then_some(end)
}

/// Whether brackets nest deeper than `max` in `b` (strings skipped).
fn depth_exceeds(b: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escape = false;
    for &c in b {
        if in_string {
            match c {
                _ if escape => escape = false,
                b'\\' => escape = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}
