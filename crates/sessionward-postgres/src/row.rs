//! Conversions between records and rows, and from sqlx errors to [`StoreError`].

use std::time::Duration;

use sessionward_core::{
    RoleSet, SessionData, SessionHandle, SessionKey, SessionRecord, StoreError, Timestamp, UserId,
};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

/// SQLSTATE `query_canceled`: `statement_timeout` fired (or the query was cancelled).
const QUERY_CANCELED: &str = "57014";
/// SQLSTATE `lock_not_available`: `lock_timeout` fired.
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE `idle_in_transaction_session_timeout`.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";

/// 9999-12-31T23:59:59Z, the last second [`OffsetDateTime`] represents without its
/// `large-dates` feature.
const MAX_UNIX: i64 = 253_402_300_799;

/// A timestamp as a `timestamptz` parameter. Instants before the epoch or after the year 9999
/// are clamped to those bounds (a session never lives there; clamping keeps the value inside
/// what both `time` and PostgreSQL represent).
pub(crate) fn to_db(t: Timestamp) -> OffsetDateTime {
    Timestamp::from_unix(t.unix().clamp(0, MAX_UNIX)).to_offset_date_time()
}

/// A duration in whole seconds as a `bigint` parameter.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A version as a `bigint` parameter. Versions count saves and never reach `i64::MAX`; a larger
/// expected version simply never matches.
pub(crate) fn version_to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `bigint` version read back.
pub(crate) fn version_from_db(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("negative version {v}")))
}

/// Maps a driver error to the store's error: timeouts (pool acquire, `statement_timeout`,
/// `lock_timeout`) are [`StoreError::Timeout`], values that do not decode are
/// [`StoreError::Corrupt`], everything else is [`StoreError::Backend`]. The sqlx error is kept
/// as the source.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    let timed_out = match &e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(
                &*code,
                QUERY_CANCELED | LOCK_NOT_AVAILABLE | IDLE_IN_TRANSACTION_TIMEOUT
            )
        }),
        _ => false,
    };
    if timed_out {
        return StoreError::Timeout(Some(Box::new(e)));
    }
    match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::corrupt(e),
        other => StoreError::backend(other),
    }
}

/// A decoding failure of our own.
pub(crate) fn corrupt(msg: String) -> StoreError {
    StoreError::corrupt(msg)
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(map_err)
}

fn timestamp(row: &PgRow, column: &str) -> Result<Timestamp, StoreError> {
    get::<OffsetDateTime>(row, column).map(Timestamp::from_offset_date_time)
}

/// Decodes a row of the record columns (`sql::record_columns!`).
pub(crate) fn record_from_row(row: &PgRow) -> Result<SessionRecord, StoreError> {
    let key: Vec<u8> = get(row, "key")?;
    let key = SessionKey::from_slice(&key)
        .ok_or_else(|| corrupt(format!("session key of {} bytes", key.len())))?;
    let handle: Vec<u8> = get(row, "handle")?;
    let handle = <[u8; sessionward_core::HANDLE_BYTES]>::try_from(handle.as_slice())
        .map(SessionHandle::from_bytes)
        .map_err(|_| corrupt(format!("session handle of {} bytes", handle.len())))?;
    let user: Option<String> = get(row, "user_id")?;
    let roles: Vec<String> = get(row, "roles")?;
    let data: String = get(row, "data")?;
    let data = SessionData::from_json(data).map_err(StoreError::corrupt)?;
    let idle: i64 = get(row, "idle_timeout_secs")?;
    let idle = u64::try_from(idle).map_err(|_| corrupt(format!("negative idle timeout {idle}")))?;
    let authenticated_at: Option<OffsetDateTime> = get(row, "authenticated_at")?;
    Ok(SessionRecord {
        key,
        handle,
        user: user.map(UserId::from),
        roles: RoleSet::from_iter(roles),
        data,
        created_at: timestamp(row, "created_at")?,
        last_seen_at: timestamp(row, "last_seen_at")?,
        authenticated_at: authenticated_at.map(Timestamp::from_offset_date_time),
        idle_timeout: Duration::from_secs(idle),
        absolute_expires_at: timestamp(row, "absolute_expires_at")?,
        user_agent: get(row, "user_agent")?,
        version: version_from_db(get(row, "version")?)?,
        authorized_at: timestamp(row, "authorized_at")?,
        persistent: get(row, "persistent")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_clamp_into_the_representable_range() {
        assert_eq!(to_db(Timestamp::from_unix(-5)).unix_timestamp(), 0);
        assert_eq!(
            to_db(Timestamp::from_unix(i64::MAX)).unix_timestamp(),
            MAX_UNIX
        );
        let t = Timestamp::from_unix(1_800_000_000);
        assert_eq!(Timestamp::from_offset_date_time(to_db(t)), t);
    }

    #[test]
    fn versions_and_durations_saturate() {
        assert_eq!(version_to_db(u64::MAX), i64::MAX);
        assert_eq!(version_to_db(7), 7);
        assert!(version_from_db(-1).is_err());
        assert_eq!(secs(Duration::MAX), i64::MAX);
        assert_eq!(secs(Duration::from_millis(1999)), 1);
    }

    #[test]
    fn pool_timeouts_are_timeouts_and_decode_failures_are_corrupt() {
        assert!(matches!(
            map_err(sqlx::Error::PoolTimedOut),
            StoreError::Timeout(Some(_))
        ));
        assert!(matches!(
            map_err(sqlx::Error::Decode("bad".into())),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::PoolClosed),
            StoreError::Backend(_)
        ));
    }
}
