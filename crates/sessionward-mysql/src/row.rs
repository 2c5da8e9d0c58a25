//! Conversions between records and rows, and from sqlx errors to [`StoreError`].

use std::time::Duration;

use sessionward_core::{
    HANDLE_BYTES, RoleSet, SessionData, SessionHandle, SessionKey, SessionRecord, StoreError,
    Timestamp, UserId,
};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use sqlx::mysql::{MySqlDatabaseError, MySqlRow};

use crate::plan::version_from_db;

/// `ER_LOCK_WAIT_TIMEOUT`: `innodb_lock_wait_timeout` ran out waiting for a row lock.
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// `ER_LOCK_DEADLOCK`: InnoDB chose this transaction as a deadlock's victim and rolled it back.
pub(crate) const ER_LOCK_DEADLOCK: u16 = 1213;
/// MySQL's `max_execution_time` ran out.
const ER_QUERY_TIMEOUT: u16 = 3024;
/// MariaDB's `max_statement_time` ran out.
const ER_STATEMENT_TIMEOUT: u16 = 1969;

/// The server's error number, if `e` is one.
pub(crate) fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Maps a driver error to the store's error: a pool with no connection in time (the server is
/// unreachable: sqlx retries a refused connection until the acquire timeout) and a server-side
/// lock or statement timeout are [`StoreError::Timeout`], values that do not decode are
/// [`StoreError::Corrupt`], everything else is [`StoreError::Backend`]. The sqlx error is kept
/// as the source.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    let timed_out = matches!(e, sqlx::Error::PoolTimedOut)
        || error_number(&e).is_some_and(|n| {
            matches!(
                n,
                ER_LOCK_WAIT_TIMEOUT | ER_QUERY_TIMEOUT | ER_STATEMENT_TIMEOUT
            )
        });
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

/// The SHA-256 of a user id: the fixed-width column the user index is on.
pub(crate) fn user_hash(user: &UserId) -> [u8; 32] {
    Sha256::digest(user.as_str().as_bytes()).into()
}

/// The roles as the JSON array text the table keeps.
pub(crate) fn roles_to_db(roles: &RoleSet) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".to_owned())
}

fn get<'r, T>(row: &'r MySqlRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
{
    row.try_get(column).map_err(map_err)
}

/// A binary column holding UTF-8 text.
fn text(row: &MySqlRow, column: &str) -> Result<Option<String>, StoreError> {
    get::<Option<Vec<u8>>>(row, column)?
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|_| corrupt(format!("{column} is not UTF-8")))
        })
        .transpose()
}

fn required_text(row: &MySqlRow, column: &str) -> Result<String, StoreError> {
    text(row, column)?.ok_or_else(|| corrupt(format!("{column} is NULL")))
}

fn timestamp(row: &MySqlRow, column: &str) -> Result<Timestamp, StoreError> {
    get::<i64>(row, column).map(Timestamp::from_unix)
}

/// Decodes a row of the record columns (`sql::record_columns!`).
pub(crate) fn record_from_row(row: &MySqlRow) -> Result<SessionRecord, StoreError> {
    let key: Vec<u8> = get(row, "key")?;
    let key = SessionKey::from_slice(&key)
        .ok_or_else(|| corrupt(format!("session key of {} bytes", key.len())))?;
    let handle: Vec<u8> = get(row, "handle")?;
    let handle = <[u8; HANDLE_BYTES]>::try_from(handle.as_slice())
        .map(SessionHandle::from_bytes)
        .map_err(|_| corrupt(format!("session handle of {} bytes", handle.len())))?;
    let roles: RoleSet =
        serde_json::from_str(&required_text(row, "roles")?).map_err(StoreError::corrupt)?;
    let data = SessionData::from_json(required_text(row, "data")?).map_err(StoreError::corrupt)?;
    let idle: i64 = get(row, "idle_timeout_secs")?;
    let idle = u64::try_from(idle).map_err(|_| corrupt(format!("negative idle timeout {idle}")))?;
    let authenticated_at: Option<i64> = get(row, "authenticated_at")?;
    Ok(SessionRecord {
        key,
        handle,
        user: text(row, "user_id")?.map(UserId::from),
        roles,
        data,
        created_at: timestamp(row, "created_at")?,
        last_seen_at: timestamp(row, "last_seen_at")?,
        authenticated_at: authenticated_at.map(Timestamp::from_unix),
        idle_timeout: Duration::from_secs(idle),
        absolute_expires_at: timestamp(row, "absolute_expires_at")?,
        user_agent: text(row, "user_agent")?,
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
        assert_eq!(error_number(&sqlx::Error::PoolClosed), None);
    }

    #[test]
    fn user_hashes_are_byte_exact() {
        let a = user_hash(&UserId::from("alice"));
        assert_ne!(a, user_hash(&UserId::from("Alice")));
        assert_ne!(a, user_hash(&UserId::from("alice ")));
        assert_eq!(a, user_hash(&UserId::from("alice")));
    }
}
