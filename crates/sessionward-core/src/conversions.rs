//! Conversions into [`UserId`] and [`RoleSet`], so that a sign-in reads
//! `session.login(42_i64, [])` or `session.login("alice", ["user"])`.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;

use crate::record::{RoleSet, UserId};

macro_rules! user_id_from_integers {
    ($($t:ty),*) => {$(
        impl From<$t> for UserId {
            /// The decimal digits of the number: `UserId::from(42_i64).as_str() == "42"`.
            fn from(n: $t) -> Self {
                Self::from(n.to_string())
            }
        }
    )*};
}

user_id_from_integers!(i16, i32, i64, i128, isize, u16, u32, u64, u128, usize);

impl From<&String> for UserId {
    fn from(s: &String) -> Self {
        Self::new(s)
    }
}

impl From<Box<str>> for UserId {
    fn from(s: Box<str>) -> Self {
        Self::new(s)
    }
}

impl From<Cow<'_, str>> for UserId {
    fn from(s: Cow<'_, str>) -> Self {
        Self::new(s)
    }
}

impl From<&UserId> for UserId {
    fn from(u: &UserId) -> Self {
        u.clone()
    }
}

impl UserId {
    /// The id as `id` displays itself: for id types of other crates, such as a UUID
    /// (`UserId::display(&uuid)` is its hyphenated text, `Uuid`'s `Display`).
    ///
    /// ```
    /// use std::fmt;
    /// use sessionward_core::UserId;
    ///
    /// struct Uuid(u128);
    /// impl fmt::Display for Uuid {
    ///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    ///         let h = format!("{:032x}", self.0);
    ///         write!(f, "{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    ///     }
    /// }
    /// let id = UserId::display(&Uuid(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8));
    /// assert_eq!(id.as_str(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
    /// assert_eq!(UserId::from(42_u64).as_str(), "42");
    /// assert_eq!(UserId::from("67e55044-10b1-426f-9247-bb680e5fe0c8").as_str().len(), 36);
    /// ```
    #[must_use]
    pub fn display(id: &impl fmt::Display) -> Self {
        Self::from(id.to_string())
    }
}

// Roles. One array impl only (`[&str; N]`), so that `[]` infers: `session.login(user, [])`.

impl<const N: usize> From<[&str; N]> for RoleSet {
    fn from(roles: [&str; N]) -> Self {
        RoleSet::from_strs(&roles)
    }
}

impl<const N: usize> From<&[&str; N]> for RoleSet {
    fn from(roles: &[&str; N]) -> Self {
        RoleSet::from_strs(roles)
    }
}

impl From<&[&str]> for RoleSet {
    fn from(roles: &[&str]) -> Self {
        RoleSet::from_strs(roles)
    }
}

impl From<&[String]> for RoleSet {
    fn from(roles: &[String]) -> Self {
        RoleSet::from_strs(roles)
    }
}

impl From<Vec<String>> for RoleSet {
    fn from(roles: Vec<String>) -> Self {
        RoleSet::from_strs(&roles)
    }
}

impl From<&Vec<String>> for RoleSet {
    fn from(roles: &Vec<String>) -> Self {
        RoleSet::from_strs(roles)
    }
}

impl From<Vec<&str>> for RoleSet {
    fn from(roles: Vec<&str>) -> Self {
        RoleSet::from_strs(&roles)
    }
}

impl From<&Vec<&str>> for RoleSet {
    fn from(roles: &Vec<&str>) -> Self {
        RoleSet::from_strs(roles)
    }
}

impl<S: AsRef<str>, H> From<HashSet<S, H>> for RoleSet {
    fn from(roles: HashSet<S, H>) -> Self {
        roles.iter().collect()
    }
}

impl<S: AsRef<str>> From<BTreeSet<S>> for RoleSet {
    fn from(roles: BTreeSet<S>) -> Self {
        roles.iter().collect()
    }
}

impl From<&RoleSet> for RoleSet {
    fn from(roles: &RoleSet) -> Self {
        roles.clone()
    }
}

impl From<&str> for RoleSet {
    /// A set of one role.
    fn from(role: &str) -> Self {
        [role].into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(r: impl Into<RoleSet>) -> Vec<String> {
        r.into().iter().map(str::to_owned).collect()
    }

    #[test]
    // The borrowed forms are what these lines test.
    #[allow(clippy::needless_borrows_for_generic_args)]
    fn every_form_converts() {
        assert!(roles([]).is_empty());
        assert_eq!(roles(["b", "a"]), ["a", "b"]);
        assert_eq!(roles(&["a"]), ["a"]);
        assert_eq!(roles(vec!["a".to_owned()]), ["a"]);
        assert_eq!(roles(&vec!["a".to_owned()]), ["a"]);
        assert_eq!(roles(vec!["a"]), ["a"]);
        assert_eq!(roles("a"), ["a"]);
        assert_eq!(roles(HashSet::from(["a"])), ["a"]);
        assert_eq!(roles(BTreeSet::from(["a".to_owned()])), ["a"]);
        let slice: &[String] = &["a".to_owned()];
        assert_eq!(roles(slice), ["a"]);
        assert_eq!(roles(&RoleSet::from(["a"])), ["a"]);
        assert_eq!(UserId::from(-7_i32).as_str(), "-7");
        assert_eq!(UserId::from(7_usize).as_str(), "7");
        assert_eq!(UserId::from(u128::MAX).as_str(), u128::MAX.to_string());
    }

    /// However a set is built (one role, duplicates, any order, through an iterator or a
    /// slice), equal sets compare and hash equal: the storage is canonical.
    #[test]
    fn equal_sets_are_equal_whatever_their_construction() {
        use std::hash::{BuildHasher, RandomState};
        let h = RandomState::new();
        let one = [
            RoleSet::from(["a"]),
            RoleSet::from(["a", "a"]),
            RoleSet::from_iter(["a"]),
            RoleSet::from(vec!["a".to_owned(), "a".to_owned()]),
        ];
        for s in &one {
            assert_eq!(s, &one[0]);
            assert_eq!(h.hash_one(s), h.hash_one(&one[0]));
            assert_eq!(s.len(), 1);
            assert!(s.contains("a") && !s.contains("b") && !s.is_empty());
        }
        let two = [
            RoleSet::from(["b", "a"]),
            RoleSet::from(["a", "b", "a"]),
            RoleSet::from_iter(["b", "a", "b"]),
        ];
        for s in &two {
            assert_eq!(s, &two[0]);
            assert_eq!(h.hash_one(s), h.hash_one(&two[0]));
            assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b"]);
        }
        assert_ne!(one[0], two[0]);
        let none = [
            RoleSet::empty(),
            RoleSet::from([]),
            RoleSet::from_iter(Vec::<&str>::new()),
        ];
        for s in &none {
            assert_eq!(s, &RoleSet::empty());
            assert!(s.is_empty() && s.iter().next().is_none() && !s.contains(""));
        }
    }
}
