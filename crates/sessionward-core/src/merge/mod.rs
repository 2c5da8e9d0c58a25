//! The data merge of [`SessionData::apply`](crate::SessionData::apply) without parsing the
//! values it keeps.
//!
//! The stored object is read as keys and raw value text (`&RawValue`): a syntax check, no
//! `Value` built. Each kept value is copied as it is when its text is already what parsing it
//! into a `serde_json::Value` and serializing that would give ([`canonical`]: compact, keys
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

mod canonical;
#[cfg(test)]
mod tests;

use canonical::{Shape, canonical_string, canonical_value, shape};

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
