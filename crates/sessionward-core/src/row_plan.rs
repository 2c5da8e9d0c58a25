//! A kit for stores that keep a session in one row of integer and text columns and decide
//! saves and rotations in Rust, inside a transaction that holds the row (the SQLite and
//! MySQL stores): the column conversions, and [`plan_save`] / [`plan_rotate`], which apply the
//! store contract's rules (merge, version check, data limit, gone and expired) to the row read.
//! The transaction must hold the row (it took the write lock first) while it decides.

use std::time::Duration;

use crate::{
    ChangeSet, RotateOutcome, SaveOutcome, SessionData, SessionRecord, StoreError, Timestamp,
};

/// 9999-12-31T23:59:59Z: stored instants are clamped to `0..=MAX_UNIX`, so that no expiry
/// computation overflows a 64-bit integer (a session never lives outside that range).
pub const MAX_UNIX: i64 = 253_402_300_799;
/// Idle timeouts longer than 100 years count as 100 years when `expires_at` is computed; the
/// stored `idle_timeout_secs` keeps the exact value.
pub const MAX_IDLE_SECS: i64 = 3_155_760_000;

/// How long a store remembers a user's authorization change at least (the contract's
/// 24 hours, see `SessionStore`, "Authorization epochs"): the sweeper forgets the change only
/// once it is this old and no session of the user predates it.
pub const AUTHZ_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether `record` may not be written because it is signed in and not current: its
/// `authorized_at` is earlier than `changed_at`, its user's stored authorization change (Unix
/// seconds; `None` if the store holds none). Compared as stored (clamped) seconds.
pub fn is_stale(record: &SessionRecord, changed_at: Option<i64>) -> bool {
    record.user.is_some() && changed_at.is_some_and(|c| to_db(record.authorized_at) < c)
}

/// A timestamp as an integer column.
pub fn to_db(t: Timestamp) -> i64 {
    t.unix().clamp(0, MAX_UNIX)
}

/// A duration in whole seconds as an integer column.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A version as an integer column. Versions count saves and never reach `i64::MAX`; a larger
/// expected version simply never matches.
pub fn version_to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A version read back.
pub fn version_from_db(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::corrupt(format!("negative version {v}")))
}

/// `min(last_seen_at + idle, absolute_expires_at)`, on stored values.
pub fn expires_at(last_seen_at: i64, idle_secs: i64, absolute_expires_at: i64) -> i64 {
    last_seen_at
        .saturating_add(idle_secs.clamp(0, MAX_IDLE_SECS))
        .min(absolute_expires_at)
}

/// The columns of the current row that a save reads.
#[derive(Debug)]
pub struct Current {
    /// The stored version.
    pub version: i64,
    /// The stored data, JSON object text.
    pub data: String,
    /// `last_seen_at`, Unix seconds.
    pub last_seen_at: i64,
    /// The idle timeout, seconds.
    pub idle_timeout_secs: i64,
    /// `absolute_expires_at`, Unix seconds.
    pub absolute_expires_at: i64,
    /// The maintained `expires_at`, Unix seconds.
    pub expires_at: i64,
}

/// The columns a save writes; `data` is `None` when the save changes no data key.
#[derive(Debug, PartialEq)]
pub struct Update {
    /// The new data, JSON object text; `None` leaves the column as it is.
    pub data: Option<String>,
    /// `last_seen_at`, Unix seconds.
    pub last_seen_at: i64,
    /// The idle timeout, seconds.
    pub idle_timeout_secs: i64,
    /// `absolute_expires_at`, Unix seconds.
    pub absolute_expires_at: i64,
    /// The maintained `expires_at`, Unix seconds.
    pub expires_at: i64,
    /// The new version.
    pub version: i64,
}

/// Decides a save: the row to write, or the outcome without a write. Gone, conflict and too
/// large take precedence in that order, as in the contract's reference store. The data merge
/// is `SessionData::apply` (keys removed, then set; compact JSON), so the size a limited save
/// measures is the size of the text the record will load as.
///
/// # Errors
/// [`StoreError::Data`] when the data would exceed the change set's limit;
/// [`StoreError::Corrupt`] when the stored data is not a JSON object.
pub fn plan_save(
    current: Option<Current>,
    expected_version: Option<u64>,
    changes: &ChangeSet,
    now: Timestamp,
) -> Result<Result<Update, SaveOutcome>, StoreError> {
    let Some(cur) = current.filter(|c| c.expires_at > to_db(now)) else {
        return Ok(Err(SaveOutcome::Gone));
    };
    let current_version = version_from_db(cur.version)?;
    if changes.is_structural() && expected_version.is_some_and(|v| v != current_version) {
        return Ok(Err(SaveOutcome::Conflict { current_version }));
    }
    let data = if changes.data.is_empty() {
        None
    } else {
        let stored = SessionData::from_json(cur.data).map_err(StoreError::corrupt)?;
        Some(
            stored
                .apply(&changes.data, changes.data_limit)?
                .as_json()
                .to_owned(),
        )
    };
    let last_seen_at = changes
        .last_seen_at
        .map_or(cur.last_seen_at, |t| cur.last_seen_at.max(to_db(t)));
    let idle_timeout_secs = changes.idle_timeout.map_or(cur.idle_timeout_secs, secs);
    let absolute_expires_at = changes
        .absolute_expires_at
        .map_or(cur.absolute_expires_at, to_db);
    Ok(Ok(Update {
        data,
        last_seen_at,
        idle_timeout_secs,
        absolute_expires_at,
        expires_at: expires_at(last_seen_at, idle_timeout_secs, absolute_expires_at),
        version: cur.version.saturating_add(1),
    }))
}

/// What a rotation does with the old row.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Delete it and create the successor.
    Rotate,
    /// Delete it (it expired: garbage) and create nothing.
    DropExpired,
    /// Leave everything as it is and answer this.
    Refuse(RotateOutcome),
}

/// Decides a rotation from the old row's `(version, expires_at, current)`, if there is one
/// (`current`: the row is anonymous or its user's authorization has not changed since it was
/// authorized). A row that expired or is not current is garbage: it is dropped and the
/// rotation answers gone.
///
/// # Errors
/// [`StoreError::Corrupt`] for a negative stored version.
pub fn plan_rotate(
    old: Option<(i64, i64, bool)>,
    expected_version: Option<u64>,
    now: Timestamp,
) -> Result<Take, StoreError> {
    let Some((version, expires, current)) = old else {
        return Ok(Take::Refuse(RotateOutcome::Gone));
    };
    if expires <= to_db(now) || !current {
        return Ok(Take::DropExpired);
    }
    let current_version = version_from_db(version)?;
    if expected_version.is_some_and(|v| v != current_version) {
        return Ok(Take::Refuse(RotateOutcome::Conflict { current_version }));
    }
    Ok(Take::Rotate)
}

#[cfg(test)]
mod tests {
    use crate::{DataError, StoreError};
    use serde_json::json;

    use super::*;

    fn current(version: i64, data: &str) -> Current {
        Current {
            version,
            data: data.to_owned(),
            last_seen_at: 1_000,
            idle_timeout_secs: 100,
            absolute_expires_at: 5_000,
            expires_at: 1_100,
        }
    }

    #[test]
    fn conversions_clamp_and_saturate() {
        assert_eq!(to_db(Timestamp::from_unix(-5)), 0);
        assert_eq!(to_db(Timestamp::from_unix(i64::MAX)), MAX_UNIX);
        assert_eq!(version_to_db(u64::MAX), i64::MAX);
        assert!(version_from_db(-1).is_err());
        assert_eq!(secs(Duration::MAX), i64::MAX);
        assert_eq!(expires_at(MAX_UNIX, i64::MAX, MAX_UNIX), MAX_UNIX);
        assert_eq!(expires_at(10, 5, 100), 15);
        assert_eq!(expires_at(10, 500, 100), 100);
    }

    #[test]
    fn a_save_merges_moves_forward_and_bumps_the_version() {
        let mut c = ChangeSet::default();
        c.data.insert("b", json!(2));
        c.last_seen_at = Some(Timestamp::from_unix(900));
        let plan = plan_save(
            Some(current(3, r#"{"a":1}"#)),
            Some(0),
            &c,
            Timestamp::from_unix(1_050),
        )
        .expect("plan");
        let update = plan.expect("a write");
        assert_eq!(update.data.as_deref(), Some(r#"{"a":1,"b":2}"#));
        assert_eq!((update.last_seen_at, update.version), (1_000, 4));
        assert_eq!(update.expires_at, 1_100);
    }

    #[test]
    fn gone_conflict_and_too_large_in_that_order() {
        let mut c = ChangeSet {
            idle_timeout: Some(Duration::from_secs(5)),
            data_limit: Some(3),
            ..ChangeSet::default()
        };
        c.data.insert("big", json!("xxxxxxxx"));
        let late = Timestamp::from_unix(1_100);
        assert_eq!(
            plan_save(Some(current(1, "{}")), Some(0), &c, late).expect("plan"),
            Err(SaveOutcome::Gone)
        );
        let early = Timestamp::from_unix(1_099);
        assert_eq!(
            plan_save(Some(current(1, "{}")), Some(0), &c, early).expect("plan"),
            Err(SaveOutcome::Conflict { current_version: 1 })
        );
        assert!(matches!(
            plan_save(Some(current(1, "{}")), Some(1), &c, early),
            Err(StoreError::Data(DataError::TooLarge { .. }))
        ));
        assert!(matches!(
            plan_save(Some(current(1, "[1]")), None, &c, early),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn rotations_take_only_a_live_row_at_the_expected_version() {
        let now = Timestamp::from_unix(100);
        assert_eq!(
            plan_rotate(None, None, now).expect("plan"),
            Take::Refuse(RotateOutcome::Gone)
        );
        assert_eq!(
            plan_rotate(Some((2, 100, true)), Some(2), now).expect("plan"),
            Take::DropExpired
        );
        assert_eq!(
            plan_rotate(Some((2, 101, false)), Some(2), now).expect("plan"),
            Take::DropExpired
        );
        assert_eq!(
            plan_rotate(Some((2, 101, true)), Some(1), now).expect("plan"),
            Take::Refuse(RotateOutcome::Conflict { current_version: 2 })
        );
        assert_eq!(
            plan_rotate(Some((2, 101, true)), None, now).expect("plan"),
            Take::Rotate
        );
    }

    #[test]
    fn a_signed_in_record_older_than_its_users_change_is_stale() {
        let mut r = SessionRecord::new(
            crate::SessionToken::generate().expect("rng").key(),
            crate::SessionHandle::from_bytes([0; 16]),
            Timestamp::from_unix(1_000),
            Duration::from_secs(100),
            Duration::from_secs(1_000),
        );
        assert!(!is_stale(&r, Some(2_000)), "anonymous records have no epoch");
        r.user = Some(crate::UserId::new("bob"));
        assert!(!is_stale(&r, None));
        assert!(!is_stale(&r, Some(1_000)));
        assert!(is_stale(&r, Some(1_001)));
    }
}
