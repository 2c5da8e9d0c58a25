//! [`SessionData`]: a session's JSON object, and the changes a request makes to it
//! ([`DataChanges`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The session data is not what it must be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The stored text is not a JSON object.
    #[error("session data is not a JSON object")]
    NotAnObject(#[source] Option<serde_json::Error>),
    /// A value could not be serialized or deserialized.
    #[error("session value could not be (de)serialized")]
    Serde(#[from] serde_json::Error),
    /// The data would exceed the configured size limit.
    #[error("session data would be {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size the data would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The application data of a session: a JSON object, kept as its text.
///
/// Keeping the text (shared, reference counted) means loading a session never parses or copies
/// its data; it is parsed only when a handler reads a value. Stores keep and return the text.
#[derive(Clone)]
pub struct SessionData(Repr);

/// The text of [`SessionData`]: `{}` needs no allocation.
#[derive(Clone)]
enum Repr {
    /// `{}`.
    Empty,
    /// Any other object text.
    Text(Arc<str>),
}

impl Default for SessionData {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for SessionData {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for SessionData {}

impl SessionData {
    /// No data: `{}`.
    #[must_use]
    pub fn empty() -> Self {
        Self(Repr::Empty)
    }

    /// Object text this crate made or checked.
    fn from_text(text: String) -> Self {
        if text == "{}" {
            Self::empty()
        } else {
            Self(Repr::Text(Arc::from(text)))
        }
    }

    /// Takes JSON object text (from a store), checking that it is an object.
    ///
    /// # Errors
    /// [`DataError::NotAnObject`] for anything but a JSON object.
    pub fn from_json(text: impl Into<Arc<str>>) -> Result<Self, DataError> {
        let text = text.into();
        if &*text == "{}" {
            return Ok(Self::empty());
        }
        match serde_json::from_str::<&serde_json::value::RawValue>(&text) {
            Ok(raw) if raw.get().trim_start().starts_with('{') => Ok(Self(Repr::Text(text))),
            Ok(_) => Err(DataError::NotAnObject(None)),
            Err(e) => Err(DataError::NotAnObject(Some(e))),
        }
    }

    /// Builds data from a parsed object.
    ///
    /// # Errors
    /// Only if serialization fails, which it does not for a `Map`.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, DataError> {
        if map.is_empty() {
            return Ok(Self::empty());
        }
        Ok(Self::from_text(serde_json::to_string(map)?))
    }

    /// The JSON object text.
    #[must_use]
    pub fn as_json(&self) -> &str {
        match &self.0 {
            Repr::Empty => "{}",
            Repr::Text(text) => text,
        }
    }

    /// Whether the object has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.as_json() == "{}"
    }

    /// Size of the JSON text in bytes.
    #[must_use]
    pub fn len_bytes(&self) -> usize {
        self.as_json().len()
    }

    /// Parses the object.
    ///
    /// # Errors
    /// [`DataError::NotAnObject`] if the text is not a JSON object.
    pub fn to_map(&self) -> Result<Map<String, Value>, DataError> {
        match serde_json::from_str::<Value>(self.as_json()) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(DataError::NotAnObject(None)),
            Err(e) => Err(DataError::NotAnObject(Some(e))),
        }
    }

    /// Applies key changes and returns the new data. `limit` caps the resulting size in bytes.
    ///
    /// The result is compact JSON with its keys sorted and unique: the text that parsing the
    /// object into a [`Map`], applying the changes (keys removed, then set) and serializing it
    /// gives. Values of keys the changes do not touch are copied, not parsed, whenever their
    /// text already is that serialization (as everything this method wrote is).
    ///
    /// # Errors
    /// [`DataError::NotAnObject`] if the current text is corrupt, [`DataError::TooLarge`] if
    /// the result would exceed `limit`.
    pub fn apply(&self, changes: &DataChanges, limit: Option<usize>) -> Result<Self, DataError> {
        if changes.is_empty() {
            return Ok(self.clone());
        }
        let stored = self.merge_base(changes);
        let mut buf = Vec::with_capacity(stored.len() + 64);
        let merged = crate::merge::merge(stored, changes, &mut buf)
            .then(|| String::from_utf8(buf).ok())
            .flatten();
        let out = match merged {
            Some(text) => Self::from_text(text),
            None => self.apply_parsed(changes)?,
        };
        if let Some(limit) = limit
            && out.len_bytes() > limit
        {
            return Err(DataError::TooLarge {
                size: out.len_bytes(),
                limit,
            });
        }
        Ok(out)
    }

    /// The size in bytes of what [`apply`](Self::apply) would return without a limit, computed
    /// without building it: what a handler's write is checked against before the store
    /// applies it.
    ///
    /// # Errors
    /// [`DataError::NotAnObject`] if the current text is corrupt (as `apply` would say).
    pub fn merged_len(&self, changes: &DataChanges) -> Result<usize, DataError> {
        if changes.is_empty() {
            return Ok(self.len_bytes());
        }
        let mut count = Count(0);
        if crate::merge::merge(self.merge_base(changes), changes, &mut count) {
            Ok(count.0)
        } else {
            Ok(self.apply_parsed(changes)?.len_bytes())
        }
    }

    /// The text a merge of `changes` starts from.
    fn merge_base(&self, changes: &DataChanges) -> &str {
        if changes.clear { "{}" } else { self.as_json() }
    }

    /// `apply` by parsing the whole object: the reference the merge must agree with, and the
    /// path for text the merge leaves to it (corrupt, very deep).
    pub(crate) fn apply_parsed(&self, changes: &DataChanges) -> Result<Self, DataError> {
        let mut map = if changes.clear {
            Map::new()
        } else {
            self.to_map()?
        };
        for key in &changes.remove {
            map.remove(key);
        }
        for (key, value) in &changes.set {
            map.insert(key.clone(), value.clone());
        }
        Self::from_map(&map)
    }
}

/// Counts what is written to it.
struct Count(usize);

impl crate::merge::Sink for Count {
    fn reset(&mut self) {
        self.0 = 0;
    }
}

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0 += buf.len();
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data may hold personal information: show its size, not its content.
        write!(f, "SessionData({} bytes)", self.len_bytes())
    }
}

/// The data keys one request set or removed. Applied on top of the stored data, so concurrent
/// requests that change different keys both keep their changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataChanges {
    /// Remove every key first (then apply `set`).
    pub clear: bool,
    /// Keys to set, with their new values.
    pub set: BTreeMap<String, Value>,
    /// Keys to remove.
    pub remove: BTreeSet<String>,
}

impl DataChanges {
    /// Whether nothing changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.clear && self.set.is_empty() && self.remove.is_empty()
    }

    /// Records that `key` is set to `value` (and no longer removed).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.remove.remove(&key);
        self.set.insert(key, value);
    }

    /// Records that `key` is removed.
    pub fn remove(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.set.remove(&key);
        self.remove.insert(key);
    }

    /// Records that every key is removed.
    pub fn clear(&mut self) {
        self.clear = true;
        self.set.clear();
        self.remove.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_apply_merges_and_limits() {
        let d = SessionData::from_json(r#"{"a":1,"b":2}"#).expect("object");
        let mut c = DataChanges::default();
        c.insert("c", Value::from("x"));
        c.remove("a");
        let d2 = d.apply(&c, None).expect("apply");
        let m = d2.to_map().expect("map");
        assert_eq!(m.get("b"), Some(&Value::from(2)));
        assert_eq!(m.get("c"), Some(&Value::from("x")));
        assert!(!m.contains_key("a"));
        let mut big = DataChanges::default();
        big.insert("k", Value::from("x".repeat(100)));
        assert!(matches!(
            d.apply(&big, Some(64)),
            Err(DataError::TooLarge { .. })
        ));
        assert!(SessionData::from_json("[1]").is_err());
        assert!(SessionData::from_json("{").is_err());
    }
}
