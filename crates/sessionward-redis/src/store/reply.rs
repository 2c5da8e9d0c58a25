//! Reading Redis replies leniently, mapping client errors, and the TTL arithmetic.

use std::collections::HashMap;

use redis::Value;
use sessionward_core::{StoreError, Timestamp};

/// Maps a client result to the store's errors.
pub(crate) fn map_err(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout(Some(Box::new(e)))
    } else {
        StoreError::backend(e)
    }
}

pub(crate) fn unexpected(what: &str, v: &Value) -> StoreError {
    StoreError::backend(format!(
        "unexpected reply from a RedisStore script ({what}): {v:?}"
    ))
}

pub(crate) fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn string_of(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// The fields of a flat `HGETALL` reply.
pub(crate) fn fields_of(v: Value) -> Option<HashMap<String, String>> {
    let Value::Array(items) = v else { return None };
    let mut map = HashMap::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(k) = it.next() {
        map.insert(string_of(k)?, string_of(it.next()?)?);
    }
    Some(map)
}

/// How long a user's authorization change time is remembered after the change: the 24 hours
/// of the store contract (far longer than any request, so no sign-in decided before the change
/// can still reach the store after it is forgotten).
pub(crate) const EPOCH_RETENTION_SECS: u64 = 24 * 60 * 60;

/// The seconds a Redis TTL should last for a record expiring at `expires_at`, seen at `now`.
pub(crate) fn ttl_secs(expires_at: Timestamp, now: Timestamp, slack: u64) -> u64 {
    let left = u64::try_from(expires_at.unix().saturating_sub(now.unix())).unwrap_or(0);
    left.saturating_add(slack).clamp(1, 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_expiry_minus_now_plus_slack_at_least_one_second() {
        let t = Timestamp::from_unix(1_000);
        assert_eq!(ttl_secs(Timestamp::from_unix(1_060), t, 0), 60);
        assert_eq!(ttl_secs(Timestamp::from_unix(1_060), t, 30), 90);
        assert_eq!(ttl_secs(Timestamp::from_unix(900), t, 0), 1);
        assert_eq!(
            ttl_secs(Timestamp::from_unix(i64::MAX), t, 60),
            1_000_000_000
        );
    }

    #[test]
    fn replies_are_read_leniently() {
        assert_eq!(int_of(&Value::Int(3)), Some(3));
        assert_eq!(int_of(&Value::BulkString(b"42".to_vec())), Some(42));
        assert_eq!(int_of(&Value::Nil), None);
        let fields = fields_of(Value::Array(vec![
            Value::BulkString(b"h".to_vec()),
            Value::BulkString(b"x".to_vec()),
        ]))
        .expect("fields");
        assert_eq!(fields.get("h").map(String::as_str), Some("x"));
        assert!(fields_of(Value::Array(vec![Value::BulkString(b"h".to_vec())])).is_none());
    }
}
