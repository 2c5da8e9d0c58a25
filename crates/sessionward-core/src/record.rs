//! The session record and its parts.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::data::{DataChanges, DataError, SessionData};
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
#[derive(Clone)]
pub struct RoleSet(Roles);

/// A [`RoleSet`]'s roles, sorted and distinct. One role (the common sign-in) is its text
/// alone: one allocation, where a slice of roles would need two.
#[derive(Clone)]
enum Roles {
    One(Arc<str>),
    Many(Arc<[Arc<str>]>),
}

impl Default for RoleSet {
    fn default() -> Self {
        Self(Roles::Many(Arc::default()))
    }
}

impl PartialEq for RoleSet {
    fn eq(&self, other: &Self) -> bool {
        self.roles() == other.roles()
    }
}

impl Eq for RoleSet {}

impl std::hash::Hash for RoleSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.roles().hash(state);
    }
}

impl RoleSet {
    /// The roles, sorted and distinct, however many.
    fn roles(&self) -> &[Arc<str>] {
        match &self.0 {
            Roles::One(role) => std::slice::from_ref(role),
            Roles::Many(roles) => roles,
        }
    }

    /// The empty set (an anonymous session, or a user without roles).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether the set holds `role` (compared byte for byte).
    #[must_use]
    pub fn contains(&self, role: &str) -> bool {
        self.roles().binary_search_by(|r| (**r).cmp(role)).is_ok()
    }

    /// The roles in sorted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.roles().iter().map(|r| &**r)
    }

    /// Number of roles.
    #[must_use]
    pub fn len(&self) -> usize {
        self.roles().len()
    }

    /// Whether there is no role.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.roles().is_empty()
    }

    /// The roles as owned strings.
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// The set of the roles of `roles`, in any order, duplicates allowed. A single role (the
    /// common sign-in) is built without the general case's intermediate `Vec`: one
    /// allocation (the role's text); no role, none.
    pub(crate) fn from_strs<S: AsRef<str>>(roles: &[S]) -> Self {
        match roles {
            [] => Self::empty(),
            [one] => Self(Roles::One(Arc::from(one.as_ref()))),
            _ => roles.iter().collect(),
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for RoleSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut owned: Vec<Arc<str>> = iter.into_iter().map(|r| Arc::from(r.as_ref())).collect();
        owned.sort();
        owned.dedup();
        if owned.len() == 1
            && let Some(one) = owned.pop()
        {
            return Self(Roles::One(one));
        }
        Self(Roles::Many(owned.into()))
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
    fn a_role_set_is_the_same_set_however_it_was_built() {
        use std::hash::BuildHasher as _;
        let hasher = std::hash::RandomState::new();
        // One role is held as its text alone; built through the general path, it is the
        // same set, equal and hashing alike.
        let one = RoleSet::from(["user"]);
        let collected: RoleSet = ["user", "user"].into_iter().collect();
        let from_strings = RoleSet::from(&["user".to_owned()][..]);
        for other in [&collected, &from_strings] {
            assert_eq!(&one, other);
            assert_eq!(hasher.hash_one(&one), hasher.hash_one(other));
        }
        assert!(one.contains("user") && !one.contains("admin"));
        assert_eq!((one.len(), one.is_empty()), (1, false));
        assert_eq!(one.iter().collect::<Vec<_>>(), ["user"]);
        assert_eq!(one.to_vec(), ["user"]);
        assert_eq!(serde_json::to_string(&one).expect("json"), r#"["user"]"#);
        let two = RoleSet::from(["user", "admin"]);
        assert_ne!(one, two);
        assert_eq!(two.iter().collect::<Vec<_>>(), ["admin", "user"]);
        let back: RoleSet = serde_json::from_str(r#"["user"]"#).expect("json");
        assert_eq!(back, one);
        let none: RoleSet = std::iter::empty::<&str>().collect();
        assert_eq!(none, RoleSet::empty());
        assert!(none.is_empty() && !none.contains(""));
        assert_eq!(hasher.hash_one(&none), hasher.hash_one(RoleSet::empty()));
    }

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
    fn roles_are_sorted_and_deduplicated() {
        let r: RoleSet = ["b", "a", "b"].into_iter().collect();
        assert_eq!(r.to_vec(), ["a", "b"]);
        assert!(r.contains("a") && !r.contains("A"));
        let json = serde_json::to_string(&r).expect("ser");
        assert_eq!(json, r#"["a","b"]"#);
    }
}
