//! Conversions between records and rows, and from sqlx errors to [`StoreError`].

use std::time::Duration;

use sessionward_core::{
    HANDLE_BYTES, RoleSet, SessionData, SessionHandle, SessionKey, SessionRecord, StoreError,
    Timestamp, UserId,
};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::plan::version_from_db;

/// SQLite's primary result codes for "another connection holds the lock": `SQLITE_BUSY` (the
/// busy timeout ran out) and `SQLITE_LOCKED` (a conflict inside a shared cache).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// Maps a driver error to the store's error: a database still locked when the busy timeout ran
/// out and a pool that had no connection in time are [`StoreError::Timeout`] (the request fails
/// closed with a 503, it never hangs), values that do not decode are [`StoreError::Corrupt`],
/// everything else is [`StoreError::Backend`]. The sqlx error is kept as the source.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    let timed_out = match &e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
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

fn corrupt(msg: String) -> StoreError {
    StoreError::corrupt(msg)
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(map_err)
}

fn timestamp(row: &SqliteRow, column: &str) -> Result<Timestamp, StoreError> {
    get::<i64>(row, column).map(Timestamp::from_unix)
}

/// The roles as the JSON array text the table keeps.
pub(crate) fn roles_to_db(roles: &RoleSet) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes a row of the record columns (`sql::record_columns!`).
pub(crate) fn record_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let key: Vec<u8> = get(row, "key")?;
    let key = SessionKey::from_slice(&key)
        .ok_or_else(|| corrupt(format!("session key of {} bytes", key.len())))?;
    let handle: Vec<u8> = get(row, "handle")?;
    let handle = <[u8; HANDLE_BYTES]>::try_from(handle.as_slice())
        .map(SessionHandle::from_bytes)
        .map_err(|_| corrupt(format!("session handle of {} bytes", handle.len())))?;
    let user: Option<String> = get(row, "user_id")?;
    let roles: String = get(row, "roles")?;
    let roles: RoleSet = serde_json::from_str(&roles).map_err(StoreError::corrupt)?;
    let data: String = get(row, "data")?;
    let data = SessionData::from_json(data).map_err(StoreError::corrupt)?;
    let idle: i64 = get(row, "idle_timeout_secs")?;
    let idle = u64::try_from(idle).map_err(|_| corrupt(format!("negative idle timeout {idle}")))?;
    let authenticated_at: Option<i64> = get(row, "authenticated_at")?;
    Ok(SessionRecord {
        key,
        handle,
        user: user.map(UserId::from),
        roles,
        data,
        created_at: timestamp(row, "created_at")?,
        last_seen_at: timestamp(row, "last_seen_at")?,
        authenticated_at: authenticated_at.map(Timestamp::from_unix),
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

    #[test]
    fn roles_round_trip_as_a_json_array() {
        let roles = RoleSet::from_iter(["b", "a\"", "{c}"]);
        let text = roles_to_db(&roles);
        assert_eq!(text, r#"["a\"","b","{c}"]"#);
        let back: RoleSet = serde_json::from_str(&text).expect("array");
        assert_eq!(back, roles);
    }
}
