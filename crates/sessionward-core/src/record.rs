//! The session record and its parts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Add, Sub};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::token::{SessionHandle, SessionKey};
pub use crate::user_id::UserId;

/// A point in time, in whole seconds since the Unix epoch (UTC).
///
/// Seconds are enough for session timeouts and keep records small.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `secs` seconds after the Unix epoch.
    #[must_use]
    pub const fn from_unix(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// This instant as an [`time::OffsetDateTime`] in UTC (for SQL drivers and formatting).
    #[must_use]
    pub fn to_offset_date_time(self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// The timestamp of an [`time::OffsetDateTime`], truncated to whole seconds.
    #[must_use]
    pub fn from_offset_date_time(t: time::OffsetDateTime) -> Self {
        Self(t.unix_timestamp())
    }

    /// RFC 3339 text, e.g. `2026-11-26T14:21:21Z`.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        self.to_offset_date_time()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// Seconds from `earlier` to `self`, zero if `earlier` is later.
    #[must_use]
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(secs_i64(rhs)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(secs_i64(rhs)))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The roles of a session: its authorization level, checked on every request.
///
/// A sorted set without duplicates; cheap to clone.
///
/// ```
/// use sessionward_core::RoleSet;
/// let roles = RoleSet::from_iter(["user", "admin", "user"]);
/// assert!(roles.contains("admin"));
/// assert_eq!(roles.iter().collect::<Vec<_>>(), ["admin", "user"]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct RoleSet(Arc<[Arc<str>]>);

impl RoleSet {
    /// The empty set (an anonymous session, or a user without roles).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether the set holds `role` (compared byte for byte).
    #[must_use]
    pub fn contains(&self, role: &str) -> bool {
        self.0.binary_search_by(|r| (**r).cmp(role)).is_ok()
    }

    /// The roles in sorted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.iter().map(|r| &**r)
    }

    /// Number of roles.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no role.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The roles as owned strings.
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// The set of the roles of `roles`, in any order, duplicates allowed. A single role (the
    /// common sign-in) is built without the general case's intermediate `Vec`: two
    /// allocations (the role's text and the set) instead of three; no role, none.
    pub(crate) fn from_strs<S: AsRef<str>>(roles: &[S]) -> Self {
        match roles {
            [] => Self::empty(),
            [one] => Self(Arc::from([Arc::from(one.as_ref())])),
            _ => roles.iter().collect(),
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for RoleSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut owned: Vec<Arc<str>> = iter.into_iter().map(|r| Arc::from(r.as_ref())).collect();
        owned.sort();
        owned.dedup();
        Self(owned.into())
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for RoleSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

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

/// One server-side session.
///
/// Expiry is `min(last_seen_at + idle_timeout, absolute_expires_at)`, checked against the
/// clock on every load whatever a store's cleanup has or has not done.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    /// SHA-256 of the token; the primary key.
    pub key: SessionKey,
    /// Public, non-secret name of the session.
    pub handle: SessionHandle,
    /// The signed-in user, `None` for an anonymous session.
    pub user: Option<UserId>,
    /// The authorization level.
    pub roles: RoleSet,
    /// Application data.
    pub data: SessionData,
    /// When the session was created.
    pub created_at: Timestamp,
    /// The last activity the server recorded.
    pub last_seen_at: Timestamp,
    /// When the user last proved their credentials (`None` for anonymous sessions).
    pub authenticated_at: Option<Timestamp>,
    /// Inactivity after which the session ends.
    pub idle_timeout: Duration,
    /// The instant after which the session ends whatever the activity.
    pub absolute_expires_at: Timestamp,
    /// The client's `User-Agent`, truncated, for "your sessions" pages.
    pub user_agent: Option<String>,
    /// Incremented by every save; for optimistic concurrency.
    pub version: u64,
    /// When the user and roles of this record were decided: for a sign-in or a privilege
    /// change, the start of the request that made it (less the layer's clock margin), not the
    /// moment the record reached the store. Kept by a rotation that does not change privileges.
    ///
    /// A signed-in record is *current* only while this is not earlier than its user's last
    /// authorization change (see [`SessionStore`](crate::SessionStore), "Authorization
    /// epochs"): a sign-in that read the user's roles before a demotion, a password change or an
    /// account disablement can therefore never leave a live session behind. Meaningless for an
    /// anonymous record (set to `created_at`).
    pub authorized_at: Timestamp,
    /// Whether the session cookie outlives the browser ("remember me"): `Some(true)` for a
    /// persistent cookie whose `Max-Age` follows the record's remaining absolute lifetime,
    /// `Some(false)` for a browser-session cookie, `None` for the layer's default.
    pub persistent: Option<bool>,
}

impl SessionRecord {
    /// A fresh anonymous record created at `now`, with no data and version 0.
    #[must_use]
    pub fn new(
        key: SessionKey,
        handle: SessionHandle,
        now: Timestamp,
        idle_timeout: Duration,
        absolute_timeout: Duration,
    ) -> Self {
        Self {
            key,
            handle,
            user: None,
            roles: RoleSet::empty(),
            data: SessionData::empty(),
            created_at: now,
            last_seen_at: now,
            authenticated_at: None,
            idle_timeout,
            absolute_expires_at: now + absolute_timeout,
            user_agent: None,
            version: 0,
            authorized_at: now,
            persistent: None,
        }
    }

    /// When the session ends: `min(last_seen_at + idle_timeout, absolute_expires_at)`.
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        (self.last_seen_at + self.idle_timeout).min(self.absolute_expires_at)
    }

    /// Whether the session is still alive at `now` (it ends at [`expires_at`](Self::expires_at)).
    #[must_use]
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at()
    }

    /// Whether the record's authorization is current given its user's last authorization
    /// change (`None`: the user's authorization never changed, or the store no longer needs to
    /// remember when). Anonymous records are always current; a signed-in one is current when
    /// [`authorized_at`](Self::authorized_at) is not earlier than `changed_at`.
    #[must_use]
    pub fn is_authorized_after(&self, changed_at: Option<Timestamp>) -> bool {
        match (&self.user, changed_at) {
            (Some(_), Some(changed)) => self.authorized_at >= changed,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SessionToken;

    #[test]
    fn expiry_is_min_of_idle_and_absolute() {
        let key = SessionToken::generate().expect("rng").key();
        let mut r = SessionRecord {
            key,
            handle: SessionHandle::from_bytes([0; 16]),
            user: None,
            roles: RoleSet::empty(),
            data: SessionData::empty(),
            created_at: Timestamp::from_unix(1000),
            last_seen_at: Timestamp::from_unix(1000),
            authenticated_at: None,
            idle_timeout: Duration::from_secs(100),
            absolute_expires_at: Timestamp::from_unix(1050),
            user_agent: None,
            version: 0,
            authorized_at: Timestamp::from_unix(1000),
            persistent: None,
        };
        assert_eq!(r.expires_at(), Timestamp::from_unix(1050));
        r.absolute_expires_at = Timestamp::from_unix(5000);
        assert_eq!(r.expires_at(), Timestamp::from_unix(1100));
        assert!(r.is_live(Timestamp::from_unix(1099)));
        assert!(!r.is_live(Timestamp::from_unix(1100)));
    }

    #[test]
    fn authorization_is_current_from_the_change_on() {
        let mut r = SessionRecord::new(
            SessionToken::generate().expect("rng").key(),
            SessionHandle::from_bytes([0; 16]),
            Timestamp::from_unix(1000),
            Duration::from_secs(100),
            Duration::from_secs(1000),
        );
        // Anonymous: no epoch applies.
        assert!(r.is_authorized_after(Some(Timestamp::from_unix(5000))));
        r.user = Some(UserId::new("bob"));
        assert!(r.is_authorized_after(None));
        assert!(r.is_authorized_after(Some(Timestamp::from_unix(999))));
        assert!(r.is_authorized_after(Some(Timestamp::from_unix(1000))));
        assert!(!r.is_authorized_after(Some(Timestamp::from_unix(1001))));
    }

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

    #[test]
    fn roles_are_sorted_and_deduplicated() {
        let r: RoleSet = ["b", "a", "b"].into_iter().collect();
        assert_eq!(r.to_vec(), ["a", "b"]);
        assert!(r.contains("a") && !r.contains("A"));
        let json = serde_json::to_string(&r).expect("ser");
        assert_eq!(json, r#"["a","b"]"#);
    }
}
