//! [`UserId`]: the application's name for a signed-in user, kept in place when it is short.
//!
//! Held in a [`smol_str::SmolStr`] rather than an `Arc<str>`: most ids are short, and an
//! `Arc<str>` made every sign-in allocate and copy the id, and every store entry keep a second
//! block for it. A hand-written inline form would have to check the text is UTF-8 on every
//! read (this crate has no `unsafe`), about 130 instructions a read of a 17-byte id.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// The longest id kept in place, without an allocation ([`smol_str`]'s inline capacity):
/// every integer id and most usernames. Longer ids (a UUID's 36 characters) share one
/// allocation between clones.
#[cfg(test)]
const INLINE: usize = 23;

/// The identifier of a signed-in user, as the application names it (a username, a numeric id
/// as text, a UUID). Cheap to clone.
///
/// An id of up to 23 bytes is held in place (no allocation: signing in with one allocates
/// nothing for it, and a store that keeps it keeps no second block); a longer one is held in
/// a shared allocation that clones point to. Either way it compares, orders, hashes, displays
/// and serializes as its text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(SmolStr);

// 24 bytes, as a `String`; a store entry's `Option<UserId>` too.
const _: () = assert!(std::mem::size_of::<Option<UserId>>() == 24);

impl UserId {
    /// Wraps an application user id.
    #[must_use]
    pub fn new(id: impl AsRef<str>) -> Self {
        Self(SmolStr::new(id))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the id is held in place (up to 23 bytes) rather than in an allocation that
    /// clones share. A store that keeps one copy of a user's id for all of the user's
    /// sessions needs to do so only for ids that are not inline.
    #[must_use]
    pub fn is_inline(&self) -> bool {
        !self.0.is_heap_allocated()
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        Self(SmolStr::from(s))
    }
}

impl From<Arc<str>> for UserId {
    /// Keeps `s`'s allocation for a long id (no copy).
    fn from(s: Arc<str>) -> Self {
        Self(SmolStr::from(s))
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.as_str())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use super::*;

    fn hash_of(v: &impl Hash) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn short_ids_are_inline_and_long_ones_shared() {
        let short = "a".repeat(INLINE);
        let long = "a".repeat(INLINE + 1);
        assert!(UserId::new(&short).is_inline());
        assert!(UserId::from(short.clone()).is_inline());
        assert!(!UserId::new(&long).is_inline());
        assert!(!UserId::from(long.clone()).is_inline());
        assert!(UserId::new("").is_inline());
        assert!(UserId::new("€€€€€€€ab").is_inline());
        assert!(!UserId::new("€€€€€€€€").is_inline());
        assert_eq!(UserId::new(&short).as_str(), short);
        assert_eq!(UserId::from(long.clone()).as_str(), long);
        let uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let id = UserId::new(uuid);
        let copy = id.clone();
        assert_eq!(copy.as_str(), uuid);
        assert_eq!(copy, id);
        assert!(!id.is_inline());
    }

    #[test]
    fn a_long_arc_is_kept_without_a_copy() {
        let arc: Arc<str> = Arc::from("x".repeat(40));
        let id = UserId::from(arc.clone());
        assert!(!id.is_inline());
        // The id holds `arc`'s allocation: one more strong count, no copy.
        assert_eq!(Arc::strong_count(&arc), 2);
        drop(id);
        assert_eq!(Arc::strong_count(&arc), 1);
        assert!(UserId::from(Arc::<str>::from("ann")).is_inline());
    }

    #[test]
    fn compares_orders_and_hashes_as_its_text() {
        // Multi-byte UTF-8 at the boundary: 7 three-byte characters and 2 bytes are 23 bytes.
        let cases = [
            "",
            "ann",
            "bob",
            "€€€€€€€ab",
            "€€€€€€€€",
            &"z".repeat(31),
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
        ];
        for a in cases {
            let ua = UserId::new(a);
            assert_eq!(ua.as_str(), a);
            assert_eq!(hash_of(&ua), hash_of(&a));
            assert_eq!(ua.to_string(), a);
            for b in cases {
                let ub = UserId::from(b.to_owned());
                assert_eq!(ua == ub, a == b, "{a:?} == {b:?}");
                assert_eq!(ua.cmp(&ub), a.cmp(b), "{a:?} cmp {b:?}");
            }
        }
    }

    #[test]
    fn serializes_as_a_string() {
        for s in ["ann", &"q".repeat(64)] {
            let id = UserId::new(s);
            let json = serde_json::to_string(&id).expect("serialize");
            assert_eq!(json, serde_json::to_string(s).expect("serialize"));
            let back: UserId = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, id);
            // An escaped string arrives as an owned `String`.
            let escaped: UserId = serde_json::from_str(r#""a\"b""#).expect("deserialize");
            assert_eq!(escaped.as_str(), "a\"b");
        }
        assert!(serde_json::from_str::<UserId>("42").is_err());
        assert_eq!(format!("{:?}", UserId::new("ann")), r#"UserId("ann")"#);
    }
}
