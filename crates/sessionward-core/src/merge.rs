//! The data merge of [`SessionData::apply`](crate::SessionData::apply) without parsing the
//! values it keeps.
//!
//! The stored object is read as keys and raw value text (`&RawValue`): a syntax check, no
//! `Value` built. Each kept value is copied as it is when its text is already what parsing it
//! into a `serde_json::Value` and serializing that would give ([`is_canonical`]: compact, keys
//! sorted and unique, the escapes serde_json writes, integers in range); any other value is
//! parsed and serialized on its own. Keys come out sorted and unique (the last of duplicate
//! keys wins), as the `Map` that `to_map` builds has them. The result is therefore the same
//! text, byte for byte, as parsing the whole object and serializing it.
//!
//! Whenever the merge cannot decide on its own (text that is not an object or is corrupt,
//! nesting deeper than [`MAX_DEPTH`], a value that does not parse), [`merge`] says so and the
//! caller takes the full parse, which gives the error it has always given.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::DataChanges;

/// Values nested deeper than this are left to the full parse (which has a recursion limit of
/// its own, 128 levels, that the merge must not second-guess).
pub(crate) const MAX_DEPTH: usize = 100;

/// One stored entry: the key (unescaped) and the value's raw text.
type Entry<'a> = (Cow<'a, str>, &'a RawValue);

/// Where a merge writes: a buffer, or a counter.
pub(crate) trait Sink: Write {
    /// Forgets what was written.
    fn reset(&mut self);
}

impl Sink for Vec<u8> {
    fn reset(&mut self) {
        self.clear();
    }
}

/// Writes the merge of `changes` into the object `stored` (keys removed, then set) to `out`.
/// `false`: the merge cannot decide (see the module docs); nothing useful was written and the
/// caller must take the full parse. `changes.clear` is the caller's: pass `"{}"` as `stored`.
pub(crate) fn merge<W: Sink>(stored: &str, changes: &DataChanges, out: &mut W) -> bool {
    if stored == "{}" {
        return merge_from(std::iter::empty::<Option<Stored<'_>>>(), changes, out) == Step::Done;
    }
    // Text this crate wrote is canonical as a whole: walk it without serde.
    match merge_from(Canonical::new(stored), changes, out) {
        Step::Done => return true,
        Step::Slow => return false,
        Step::NotCanonical => out.reset(),
    }
    match entries(stored) {
        Some(entries) => {
            let items = entries.iter().map(|(k, raw)| {
                Some(Stored {
                    key: k.as_ref(),
                    raw: raw.get(),
                    canonical: false,
                })
            });
            merge_from(items, changes, out) == Step::Done
        }
        None => false,
    }
}

/// One stored entry as the merge reads it.
struct Stored<'a> {
    key: &'a str,
    raw: &'a str,
    /// Known to be canonical (otherwise it is checked when it matters).
    canonical: bool,
}

/// How a merge ended.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    /// Leave it to the full parse.
    Slow,
    /// The canonical walk met text that is not (an item `None`): try the general one.
    NotCanonical,
}

/// The merge over stored entries sorted by key without duplicates.
fn merge_from<'a, W: Write>(
    stored: impl Iterator<Item = Option<Stored<'a>>>,
    changes: &DataChanges,
    out: &mut W,
) -> Step {
    let mut w = Writer { out, first: true };
    if w.out.write_all(b"{").is_err() {
        return Step::Slow;
    }
    let mut set = changes.set.iter().peekable();
    for item in stored {
        let Some(Stored {
            key,
            raw,
            canonical,
        }) = item
        else {
            return Step::NotCanonical;
        };
        while let Some((k, v)) = set.next_if(|(k, _)| k.as_str() < key) {
            if !w.set(k, v) {
                return Step::Slow;
            }
        }
        let replaced = set.next_if(|(k, _)| k.as_str() == key);
        if replaced.is_some() || changes.remove.contains(key) {
            // The old value is dropped; it must still be one the full parse accepts.
            if !canonical && !drops_cleanly(raw) {
                return Step::Slow;
            }
            if let Some((k, v)) = replaced
                && !w.set(k, v)
            {
                return Step::Slow;
            }
        } else if !w.keep(key, raw, canonical) {
            return Step::Slow;
        }
    }
    for (k, v) in set {
        if !w.set(k, v) {
            return Step::Slow;
        }
    }
    if w.out.write_all(b"}").is_ok() {
        Step::Done
    } else {
        Step::Slow
    }
}

/// The entries of a canonical object, checked as they are walked: an item `None` at the
/// first thing that is not canonical.
struct Canonical<'a> {
    text: &'a str,
    /// Where the next key starts; `None` once done.
    pos: Option<usize>,
    prev: Option<&'a str>,
}

impl<'a> Canonical<'a> {
    fn new(text: &'a str) -> Self {
        let pos = match text.as_bytes().first() {
            _ if text == "{}" => None,
            Some(b'{') => Some(1),
            // Not even an object's start: the first item says so.
            _ => Some(usize::MAX),
        };
        Self {
            text,
            pos,
            prev: None,
        }
    }

    fn entry(&mut self, pos: usize) -> Option<(Stored<'a>, Option<usize>)> {
        let b = self.text.as_bytes();
        if b.get(pos) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = canonical_string(b, pos)?;
        let key = self.text.get(pos + 1..end - 1)?;
        if escaped || self.prev.is_some_and(|p| p >= key) || b.get(end) != Some(&b':') {
            return None;
        }
        self.prev = Some(key);
        let value_end = canonical_value(b, end + 1, 1)?;
        let raw = self.text.get(end + 1..value_end)?;
        let next = match b.get(value_end) {
            Some(b',') => Some(value_end + 1),
            Some(b'}') if value_end + 1 == b.len() => None,
            _ => return None,
        };
        Some((
            Stored {
                key,
                raw,
                canonical: true,
            },
            next,
        ))
    }
}

impl<'a> Iterator for Canonical<'a> {
    type Item = Option<Stored<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.pos.take()?;
        match self.entry(pos) {
            Some((stored, next)) => {
                self.pos = next;
                Some(Some(stored))
            }
            None => Some(None),
        }
    }
}

/// Writes entries, with the commas between them.
struct Writer<'w, W> {
    out: &'w mut W,
    first: bool,
}

impl<W: Write> Writer<'_, W> {
    fn key(&mut self, key: &str) -> bool {
        if !self.first && self.out.write_all(b",").is_err() {
            return false;
        }
        self.first = false;
        self.string(key) && self.out.write_all(b":").is_ok()
    }

    /// A string as serde_json writes it (directly when it needs no escape).
    fn string(&mut self, s: &str) -> bool {
        if needs_escape(s) {
            serde_json::to_writer(&mut *self.out, s).is_ok()
        } else {
            self.out.write_all(b"\"").is_ok()
                && self.out.write_all(s.as_bytes()).is_ok()
                && self.out.write_all(b"\"").is_ok()
        }
    }

    fn set(&mut self, key: &str, value: &Value) -> bool {
        if !self.key(key) {
            return false;
        }
        match value {
            Value::String(s) => self.string(s),
            Value::Bool(true) => self.out.write_all(b"true").is_ok(),
            Value::Bool(false) => self.out.write_all(b"false").is_ok(),
            Value::Null => self.out.write_all(b"null").is_ok(),
            _ => serde_json::to_writer(&mut *self.out, value).is_ok(),
        }
    }

    fn keep(&mut self, key: &str, raw: &str, canonical: bool) -> bool {
        if !self.key(key) {
            return false;
        }
        match if canonical {
            Shape::Canonical
        } else {
            shape(raw)
        } {
            Shape::Canonical => self.out.write_all(raw.as_bytes()).is_ok(),
            Shape::Other => match serde_json::from_str::<Value>(raw) {
                Ok(v) => serde_json::to_writer(&mut *self.out, &v).is_ok(),
                Err(_) => false,
            },
            Shape::TooDeep => false,
        }
    }
}

/// Whether serde_json writes `s` with escapes.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Whether the full parse would accept `raw`, a value it drops.
fn drops_cleanly(raw: &str) -> bool {
    match shape(raw) {
        Shape::Canonical => true,
        Shape::Other => serde_json::from_str::<Value>(raw).is_ok(),
        Shape::TooDeep => false,
    }
}

/// The stored object's entries sorted by key, the last of duplicate keys kept; `None` if the
/// text is not a JSON object or is corrupt.
fn entries(text: &str) -> Option<Vec<Entry<'_>>> {
    let Entries(mut entries) = serde_json::from_str(text).ok()?;
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        // A stable sort keeps duplicates in text order; of each run, keep the last (as a
        // parse into a map does).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                std::mem::swap(later, kept);
                true
            } else {
                false
            }
        });
    }
    Some(entries)
}

/// The entries of an object, as they come.
struct Entries<'a>(Vec<Entry<'a>>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(8);
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((k, v));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A key, borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// What a value's raw text is, against what parsing and serializing it would give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Exactly that text: copy it.
    Canonical,
    /// Something else (whitespace, other escapes, a float, unsorted keys...): parse it.
    Other,
    /// Nested deeper than [`MAX_DEPTH`]: leave it to the full parse.
    TooDeep,
}

/// Classifies `raw`, one value's text that serde_json has already checked for syntax.
pub(crate) fn shape(raw: &str) -> Shape {
    let b = raw.as_bytes();
    match canonical_value(b, 0, 0) {
        Some(end) if end == b.len() => Shape::Canonical,
        _ if depth_exceeds(b, MAX_DEPTH) => Shape::TooDeep,
        _ => Shape::Other,
    }
}

/// The end of the canonical value at `i`, `None` if it is not canonical (or too deep).
fn canonical_value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
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
fn canonical_string(b: &[u8], i: usize) -> Option<(usize, bool)> {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::{MAX_DEPTH, Shape, shape};
    use crate::{DataChanges, DataError, SessionData};

    /// The old `apply`: parse everything, change, serialize, then the limit.
    fn reference(
        d: &SessionData,
        c: &DataChanges,
        limit: Option<usize>,
    ) -> Result<SessionData, DataError> {
        if c.is_empty() {
            return Ok(d.clone());
        }
        let out = d.apply_parsed(c)?;
        match limit {
            Some(limit) if out.len_bytes() > limit => Err(DataError::TooLarge {
                size: out.len_bytes(),
                limit,
            }),
            _ => Ok(out),
        }
    }

    /// `apply` and `merged_len` agree with the reference: the same text, or the same error.
    fn agrees(d: &SessionData, c: &DataChanges, limit: Option<usize>) -> Result<(), String> {
        let got = d.apply(c, limit);
        let want = reference(d, c, limit);
        match (&got, &want) {
            (Ok(g), Ok(w)) if g.as_json() == w.as_json() => {}
            (Err(DataError::NotAnObject(_)), Err(DataError::NotAnObject(_))) => {}
            (
                Err(DataError::TooLarge { size, limit }),
                Err(DataError::TooLarge {
                    size: s2,
                    limit: l2,
                }),
            ) if (size, limit) == (s2, l2) => {}
            _ => return Err(format!("{:?}: got {got:?}, want {want:?}", d.as_json())),
        }
        if let Ok(g) = &got {
            let parsed: Value = serde_json::from_str(g.as_json()).map_err(|e| e.to_string())?;
            let w: Value =
                serde_json::from_str(want.as_ref().map_err(|e| e.to_string())?.as_json())
                    .map_err(|e| e.to_string())?;
            if parsed != w {
                return Err(format!("values differ: {parsed} / {w}"));
            }
        }
        let len = d.merged_len(c);
        let want_len = reference(d, c, None).map(|w| w.len_bytes());
        match (&len, &want_len) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            (Err(DataError::NotAnObject(_)), Err(DataError::NotAnObject(_))) => Ok(()),
            _ => Err(format!(
                "{:?}: merged_len {len:?}, want {want_len:?}",
                d.as_json()
            )),
        }
    }

    fn data(text: &str) -> SessionData {
        SessionData::from_json(text).expect("object")
    }

    fn set(key: &str, value: Value) -> DataChanges {
        let mut c = DataChanges::default();
        c.insert(key, value);
        c
    }

    fn check(text: &str, c: &DataChanges) {
        if let Err(e) = agrees(&data(text), c, None) {
            panic!("{e}");
        }
    }

    #[test]
    fn keeps_canonical_values_and_sorts_in_new_keys() {
        let d = data(r#"{"a":1,"c":{"x":[true,null,"s"]},"e":"v"}"#);
        let mut c = set("b", json!("new"));
        c.insert("z", json!([1, 2]));
        c.remove("e");
        let out = d.apply(&c, None).expect("apply");
        assert_eq!(
            out.as_json(),
            r#"{"a":1,"b":"new","c":{"x":[true,null,"s"]},"z":[1,2]}"#
        );
        check(d.as_json(), &c);
        assert!(super::merge(d.as_json(), &c, &mut Vec::new()));
    }

    #[test]
    fn escaped_and_unicode_keys_come_out_as_serde_json_writes_them() {
        for text in [
            r#"{"a\"b":1,"\u00e9":2,"\/":3,"\n":4,"\u0001":5,"é":6}"#,
            r#"{"snow ☃":"☃ é","\ud83d\ude00":"\ud83d\ude00"}"#,
            r#"{"k":"\u0041\/\u001F\u001f\u000a\u000b\t"}"#,
        ] {
            check(text, &set("b", json!(1)));
            check(text, &set("é", json!("ü\"\\\u{1}")));
            let mut c = DataChanges::default();
            c.remove("a\"b");
            c.remove("\u{1}");
            check(text, &c);
        }
        let out = data(r#"{"\u00e9":"\u00e9"}"#)
            .apply(&set("a", json!(0)), None)
            .expect("apply");
        assert_eq!(out.as_json(), r#"{"a":0,"é":"é"}"#);
    }

    #[test]
    fn other_text_is_made_canonical_value_by_value() {
        for text in [
            r#"{"a": "x", "n": {"z": 1, "b": [1, 2.5, null]}}"#,
            "{\n  \"a\": [\n    1\n  ]\n}",
            r#"{"f":1.0,"g":1e2,"h":-0,"i":-0.0,"j":2.5E-3}"#,
            r#"{"u":18446744073709551615,"v":18446744073709551616,"w":-9223372036854775808,"x":-9223372036854775809}"#,
            r#"{"nested":{"b":1,"a":2,"b":3},"o":{"a":{}},"p":[[],{}]}"#,
        ] {
            check(text, &set("zz", json!(null)));
            check(text, &set("a", json!({"k": [1]})));
            let mut c = DataChanges::default();
            c.remove("a");
            check(text, &c);
        }
        let out = data(r#"{"a": [1, 2], "b": 1e2}"#)
            .apply(&set("c", json!(3)), None)
            .expect("apply");
        assert_eq!(out.as_json(), r#"{"a":[1,2],"b":100.0,"c":3}"#);
    }

    #[test]
    fn duplicate_and_unsorted_keys_keep_the_last() {
        let d = data(r#"{"b":1,"a":2,"b":3,"a":{"x":1}}"#);
        let out = d.apply(&set("c", json!(4)), None).expect("apply");
        assert_eq!(out.as_json(), r#"{"a":{"x":1},"b":3,"c":4}"#);
        check(d.as_json(), &set("b", json!(5)));
        let mut c = DataChanges::default();
        c.remove("b");
        check(d.as_json(), &c);
    }

    #[test]
    fn removing_absent_keys_and_clearing() {
        let d = data(r#"{"a":1}"#);
        let mut c = DataChanges::default();
        c.remove("nope");
        assert_eq!(d.apply(&c, None).expect("apply").as_json(), r#"{"a":1}"#);
        check(d.as_json(), &c);
        c.remove("a");
        let out = d.apply(&c, None).expect("apply");
        assert!(out.is_empty());
        assert_eq!(out, SessionData::empty());
        let mut c = DataChanges::default();
        c.clear();
        assert_eq!(d.apply(&c, None).expect("apply"), SessionData::empty());
        c.insert("b", json!(true));
        assert_eq!(d.apply(&c, None).expect("apply").as_json(), r#"{"b":true}"#);
        // A clear never reads the stored text, corrupt or not (as before).
        let corrupt = data(r#"{"a":1e400}"#);
        assert_eq!(
            corrupt.apply(&c, None).expect("apply").as_json(),
            r#"{"b":true}"#
        );
        assert_eq!(corrupt.merged_len(&c).expect("len"), 10);
    }

    #[test]
    fn the_limit_holds_at_the_bound_and_refuses_one_over() {
        let d = data(r#"{"a":"xyz"}"#);
        let c = set("b", json!([1, 2]));
        let size = r#"{"a":"xyz","b":[1,2]}"#.len();
        assert_eq!(d.merged_len(&c).expect("len"), size);
        assert_eq!(d.apply(&c, Some(size)).expect("at").len_bytes(), size);
        match d.apply(&c, Some(size - 1)) {
            Err(DataError::TooLarge { size: s, limit }) => assert_eq!((s, limit), (size, size - 1)),
            other => panic!("{other:?}"),
        }
        for limit in [size - 1, size, size + 1] {
            agrees(&d, &c, Some(limit)).expect("agrees");
        }
    }

    #[test]
    fn corrupt_stored_text_is_not_an_object() {
        // Text that passes the syntax check of `from_json` but not a full parse: a number out
        // of range, a lone surrogate, nesting past serde_json's limit.
        let deep = format!("{{\"d\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            r#"{"a":1e400,"b":1}"#.to_owned(),
            r#"{"a":"\ud800","b":1}"#.to_owned(),
            r#"{"\ud800":1}"#.to_owned(),
            deep,
        ] {
            let d = data(&text);
            for c in [set("a", json!(1)), set("c", json!(1)), {
                let mut c = DataChanges::default();
                c.remove("a");
                c
            }] {
                assert!(
                    matches!(d.apply(&c, None), Err(DataError::NotAnObject(Some(_)))),
                    "{text}"
                );
                assert!(matches!(
                    d.merged_len(&c),
                    Err(DataError::NotAnObject(Some(_)))
                ));
                agrees(&d, &c, None).expect("agrees");
            }
        }
    }

    #[test]
    fn deep_values_are_left_to_the_full_parse() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(shape(&nested(MAX_DEPTH)), Shape::Canonical);
        assert_eq!(shape(&nested(MAX_DEPTH + 1)), Shape::TooDeep);
        for n in [MAX_DEPTH, MAX_DEPTH + 1, 120, 126, 127, 128] {
            let text = format!("{{\"d\":{}}}", nested(n));
            check(&text, &set("a", json!(1)));
            let mut c = DataChanges::default();
            c.remove("d");
            check(&text, &c);
        }
    }

    #[test]
    fn canonical_text_is_walked_without_serde() {
        fn walk(t: &str) -> Vec<Option<(&str, &str)>> {
            super::Canonical::new(t)
                .map(|e| e.map(|e| (e.key, e.raw)))
                .collect()
        }
        assert!(walk("{}").is_empty());
        assert_eq!(
            walk(r#"{"a":1,"b":{"x":[]},"é":"s\"q"}"#),
            [
                Some(("a", "1")),
                Some(("b", r#"{"x":[]}"#)),
                Some(("é", r#""s\"q""#))
            ]
        );
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"{"a\"":1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1} "#,
            r#" {"a":1}"#,
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            "[1]",
            "{ }",
        ] {
            assert_eq!(walk(text).last(), Some(&None), "{text}");
        }
    }

    #[test]
    fn shapes() {
        for raw in [
            r#""plain""#,
            r#""q\"b\\\n\t\r\b\f\u0001\u001f\u000b""#,
            "\"☃\u{7f}\"",
            "0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            r#"{"a":[1,{"b":null}],"b":{}}"#,
        ] {
            assert_eq!(shape(raw), Shape::Canonical, "{raw}");
        }
        for raw in [
            r#""\/""#,
            r#""\u0041""#,
            r#""\u001F""#,
            r#""\u000a""#,
            "-0",
            "1.5",
            "1e2",
            "18446744073709551616",
            "-9223372036854775809",
            "[1, 2]",
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"\u0041":1}"#,
        ] {
            assert_eq!(shape(raw), Shape::Other, "{raw}");
        }
    }

    #[test]
    fn empty_data_needs_no_text_and_behaves_as_before() {
        let e = SessionData::empty();
        assert_eq!(e.as_json(), "{}");
        assert!(e.is_empty());
        assert_eq!(e.len_bytes(), 2);
        assert_eq!(format!("{e:?}"), "SessionData(2 bytes)");
        assert_eq!(e, SessionData::default());
        assert_eq!(e, data("{}"));
        assert_eq!(e, SessionData::from_map(&Map::new()).expect("map"));
        assert_eq!(e.to_map().expect("map"), Map::new());
        assert_ne!(e, data("{ }"));
        assert!(!data("{ }").is_empty());
        assert_eq!(
            e.apply(&set("a", json!(1)), None).expect("apply").as_json(),
            r#"{"a":1}"#
        );
        assert_eq!(e.merged_len(&set("a", json!(1))).expect("len"), 7);
        assert_eq!(e.merged_len(&DataChanges::default()).expect("len"), 2);
    }

    /// Whether the walk of canonical text takes `v` as it is: no floats, and no object key
    /// with an escape (the cases it leaves to the general merge).
    fn walkable(v: &Value) -> bool {
        match v {
            Value::Number(n) => !n.is_f64(),
            Value::Array(a) => a.iter().all(walkable),
            Value::Object(m) => m.iter().all(|(k, v)| {
                !k.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\') && walkable(v)
            }),
            _ => true,
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("pref:theme".to_owned()),
            Just("é".to_owned()),
            Just("q\"\\".to_owned()),
            Just("\n\u{1}".to_owned()),
            "[a-c☃]{0,3}",
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\"\\\\\u{0}-\u{1f}é☃/]{0,6}".prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((key(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Object text in the forms stores hand back: compact, pretty, or written by hand with
    /// spaces, unsorted and duplicate keys.
    fn stored() -> impl Strategy<Value = String> {
        let entries = prop::collection::vec((key(), value()), 0..6);
        (entries, 0..3u8).prop_map(|(entries, form)| match form {
            0 => serde_json::to_string(&entries.into_iter().collect::<Map<_, _>>()).expect("ser"),
            1 => serde_json::to_string_pretty(&entries.into_iter().collect::<Map<_, _>>())
                .expect("ser"),
            _ => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}: {}",
                            serde_json::to_string(k).expect("key"),
                            serde_json::to_string_pretty(v).expect("value")
                        )
                    })
                    .collect();
                format!("{{ {} }}", parts.join(" , "))
            }
        })
    }

    fn changes() -> impl Strategy<Value = DataChanges> {
        (
            any::<bool>(),
            prop::collection::vec((key(), prop::option::of(value())), 0..5),
        )
            .prop_map(|(clear, ops)| {
                let mut c = DataChanges::default();
                if clear {
                    c.clear();
                }
                for (k, v) in ops {
                    match v {
                        Some(v) => c.insert(k, v),
                        None => c.remove(k),
                    }
                }
                c
            })
    }

    proptest! {
        #[test]
        fn apply_equals_parse_and_serialize(
            text in stored(),
            c in changes(),
            slack in prop::option::of(-3i64..3),
        ) {
            let d = data(&text);
            let limit = slack.and_then(|s| {
                let len = reference(&d, &c, None).ok()?.len_bytes();
                usize::try_from(i64::try_from(len).ok()? + s).ok()
            });
            if let Err(e) = agrees(&d, &c, limit) {
                prop_assert!(false, "{}", e);
            }
            // Valid, shallow text never needs the full parse.
            let base = if c.clear { "{}" } else { d.as_json() };
            prop_assert!(super::merge(base, &c, &mut Vec::new()));
            // And once more on the result, which is canonical: the merge copies it whole.
            if let Ok(out) = d.apply(&c, None) {
                let parsed: Value = serde_json::from_str(out.as_json()).expect("json");
                prop_assert!(
                    c.is_empty()
                        || !walkable(&parsed)
                        || super::Canonical::new(out.as_json()).all(|e| e.is_some()),
                    "not walked as canonical: {}",
                    out.as_json()
                );
                if let Err(e) = agrees(&out, &c, None) {
                    prop_assert!(false, "{}", e);
                }
            }
        }
    }
}
