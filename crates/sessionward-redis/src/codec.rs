//! Records to hash fields and back.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use sessionward_core::{
    RoleSet, SessionData, SessionHandle, SessionKey, SessionRecord, StoreError, Timestamp, UserId,
};
use sha2::{Digest as _, Sha256};

/// Field of a data key: `d:` and the key.
pub(crate) const DATA_PREFIX: &str = "d:";

/// The index name of a user: 32 hex digits of SHA-256 of the id, so key names hold no personal
/// data and have a fixed length. Scripts compare the record's `u` field with the id itself, so
/// even a digest collision could not mix two users' sessions.
pub(crate) fn user_digest(user: &UserId) -> String {
    let digest = Sha256::digest(user.as_str().as_bytes());
    let mut s = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Seconds of a duration as stored (clamped to what Lua's doubles hold exactly).
pub(crate) fn secs(d: Duration) -> u64 {
    d.as_secs().min(1 << 53)
}

/// The JSON text of the roles.
pub(crate) fn roles_json(roles: &RoleSet) -> String {
    serde_json::to_string(&roles.to_vec()).unwrap_or_else(|_| "[]".to_owned())
}

/// The length of `k` as a JSON string, quotes included (what `serde_json` writes: `"` and `\\`
/// escaped with a backslash, `\b \t \n \f \r` likewise, other control characters as
/// `\u00XX`, everything else as is).
pub(crate) fn quoted_len(k: &str) -> usize {
    2 + k
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | b'\t' | b'\n' | 0x0c | b'\r' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The size field `ds` of a record at `version` holding `data` (name, JSON text of the value):
/// `<version> <sum> <count>`, the sum over the keys of quoted-name length + 1 + value length
/// (the JSON object text is then `2 + sum + count - 1` bytes, `2` when empty). The save script
/// trusts it only while `<version>` is the record's version (`scripts.rs`, `SAVE`).
pub(crate) fn size_field<'a>(
    version: u64,
    data: impl IntoIterator<Item = (&'a str, usize)>,
) -> String {
    let (mut sum, mut count) = (0usize, 0usize);
    for (k, value_len) in data {
        sum += quoted_len(k) + 1 + value_len;
        count += 1;
    }
    format!("{version} {sum} {count}")
}

/// The fields of a record, as alternating names and values for `HSET`.
///
/// # Errors
/// [`StoreError::Data`] if the record's data is not a JSON object.
pub(crate) fn record_fields(r: &SessionRecord) -> Result<Vec<String>, StoreError> {
    let data = r.data.to_map()?;
    let mut out = Vec::with_capacity(24 + 2 * data.len());
    let mut push = |k: &str, v: String| {
        out.push(k.to_owned());
        out.push(v);
    };
    push("h", r.handle.to_string());
    if let Some(user) = &r.user {
        push("u", user.as_str().to_owned());
        push("uk", user_digest(user));
    }
    push("r", roles_json(&r.roles));
    push("c", r.created_at.unix().to_string());
    push("s", r.last_seen_at.unix().to_string());
    if let Some(at) = r.authenticated_at {
        push("a", at.unix().to_string());
    }
    push("i", secs(r.idle_timeout).to_string());
    push("x", r.absolute_expires_at.unix().to_string());
    if let Some(ua) = &r.user_agent {
        push("ua", ua.clone());
    }
    push("v", r.version.to_string());
    push("z", r.authorized_at.unix().to_string());
    if let Some(p) = r.persistent {
        push("p", if p { "1" } else { "0" }.to_owned());
    }
    let mut sizes = Vec::with_capacity(data.len());
    for (k, v) in &data {
        let text = v.to_string();
        sizes.push((k.as_str(), text.len()));
        push(&format!("{DATA_PREFIX}{k}"), text);
    }
    push("ds", size_field(r.version, sizes));
    Ok(out)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::corrupt(format!("redis session record: {what}"))
}

fn int<T: std::str::FromStr>(
    fields: &HashMap<String, String>,
    name: &str,
) -> Result<T, StoreError> {
    fields
        .get(name)
        .ok_or_else(|| corrupt(&format!("field `{name}` is missing")))?
        .parse()
        .map_err(|_| corrupt(&format!("field `{name}` is not a number")))
}

/// Rebuilds a record from its hash fields (`HGETALL`); `None` for an empty hash (no record).
///
/// # Errors
/// [`StoreError::Corrupt`] if a field is missing or malformed.
pub(crate) fn decode(
    key: SessionKey,
    fields: &HashMap<String, String>,
) -> Result<Option<SessionRecord>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let handle = fields
        .get("h")
        .and_then(|h| SessionHandle::parse(h))
        .ok_or_else(|| corrupt("field `h` is not a handle"))?;
    let roles: Vec<String> = serde_json::from_str(
        fields
            .get("r")
            .ok_or_else(|| corrupt("field `r` is missing"))?,
    )
    .map_err(StoreError::corrupt)?;
    let mut data: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(DATA_PREFIX)?, v.as_str())))
        .collect();
    data.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut text = String::with_capacity(
        2 + data
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    text.push('{');
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(k).map_err(StoreError::corrupt)?);
        text.push(':');
        text.push_str(v);
    }
    text.push('}');
    let data = SessionData::from_json(text).map_err(StoreError::corrupt)?;
    let created_at = Timestamp::from_unix(int(fields, "c")?);
    Ok(Some(SessionRecord {
        key,
        handle,
        user: fields.get("u").map(UserId::new),
        roles: roles.into_iter().collect(),
        data,
        created_at,
        last_seen_at: Timestamp::from_unix(int(fields, "s")?),
        authenticated_at: match fields.get("a") {
            Some(_) => Some(Timestamp::from_unix(int(fields, "a")?)),
            None => None,
        },
        idle_timeout: Duration::from_secs(int(fields, "i")?),
        absolute_expires_at: Timestamp::from_unix(int(fields, "x")?),
        user_agent: fields.get("ua").cloned(),
        version: int(fields, "v")?,
        // Records written before authorization epochs have no `z`: authorized when created.
        authorized_at: match fields.get("z") {
            Some(_) => Timestamp::from_unix(int(fields, "z")?),
            None => created_at,
        },
        persistent: match fields.get("p").map(String::as_str) {
            None => None,
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(_) => return Err(corrupt("field `p` is not 0 or 1")),
        },
    }))
}

/// Parses a key hex (64 lowercase hex digits) back into a key.
pub(crate) fn key_from_hex(hex: &str) -> Option<SessionKey> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(SessionKey::from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionward_core::SessionToken;

    fn sample() -> SessionRecord {
        let mut r = SessionRecord::new(
            SessionToken::generate().expect("rng").key(),
            SessionHandle::generate().expect("rng"),
            Timestamp::from_unix(1_700_000_000),
            Duration::from_secs(600),
            Duration::from_secs(3600),
        );
        r.user = Some(UserId::new("alice@example.com"));
        r.roles = RoleSet::from_iter(["user", "admin"]);
        r.authenticated_at = Some(Timestamp::from_unix(1_699_999_000));
        r.user_agent = Some("ua \"quoted\"".into());
        r.data = SessionData::from_json(
            r#"{"cart":[],"n":1.5,"big":12345678901234567890,"k\"ey":{"x":null},"e":{}}"#,
        )
        .expect("object");
        r.version = 7;
        r.authorized_at = Timestamp::from_unix(1_700_000_100);
        r.persistent = Some(true);
        r
    }

    fn to_map(fields: Vec<String>) -> HashMap<String, String> {
        let mut it = fields.into_iter();
        let mut map = HashMap::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.insert(k, v);
        }
        map
    }

    #[test]
    fn record_round_trips_through_fields() {
        let r = sample();
        let back = decode(r.key, &to_map(record_fields(&r).expect("fields")))
            .expect("decodes")
            .expect("some");
        assert_eq!(
            back.data.to_map().expect("map"),
            r.data.to_map().expect("map")
        );
        // Empty arrays and objects and big integers survive (no Lua JSON round trip).
        assert!(back.data.as_json().contains(r#""cart":[]"#));
        assert!(back.data.as_json().contains("12345678901234567890"));
        let mut back = back;
        back.data = r.data.clone();
        assert_eq!(back, r);
    }

    #[test]
    fn anonymous_record_round_trips() {
        let mut r = sample();
        r.user = None;
        r.authenticated_at = None;
        r.user_agent = None;
        r.roles = RoleSet::empty();
        r.data = SessionData::empty();
        let fields = record_fields(&r).expect("fields");
        assert!(!fields.iter().any(|f| f == "u" || f == "uk" || f == "a"));
        let back = decode(r.key, &to_map(fields))
            .expect("decodes")
            .expect("some");
        assert_eq!(back, r);
        assert!(back.data.is_empty());
    }

    #[test]
    fn records_from_before_epochs_decode_as_authorized_when_created() {
        let r = sample();
        let mut map = to_map(record_fields(&r).expect("fields"));
        assert_eq!(map.get("p").map(String::as_str), Some("1"));
        map.remove("z");
        map.remove("p");
        let back = decode(r.key, &map).expect("decodes").expect("some");
        assert_eq!(back.authorized_at, r.created_at);
        assert_eq!(back.persistent, None);
        let mut r2 = r;
        r2.persistent = Some(false);
        let map = to_map(record_fields(&r2).expect("fields"));
        let back = decode(r2.key, &map).expect("decodes").expect("some");
        assert_eq!(back.persistent, Some(false));
        let mut map = map;
        map.insert("p".into(), "yes".into());
        assert!(matches!(decode(r2.key, &map), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn corrupt_fields_are_errors() {
        let r = sample();
        let mut map = to_map(record_fields(&r).expect("fields"));
        map.insert("v".into(), "x".into());
        assert!(matches!(decode(r.key, &map), Err(StoreError::Corrupt(_))));
        map.remove("h");
        assert!(matches!(decode(r.key, &map), Err(StoreError::Corrupt(_))));
        assert!(decode(r.key, &HashMap::new()).expect("empty").is_none());
    }

    #[test]
    fn quoted_len_is_the_length_serde_json_writes() {
        let keys = [
            "",
            "plain",
            "quote\"back\\slash",
            "ctl\n\t\u{1}\u{1f}\u{7f}\u{8}\u{c}\r",
            "ünï ☃ é",
        ];
        for k in keys {
            let json = serde_json::to_string(k).expect("string");
            assert_eq!(quoted_len(k), json.len(), "{k:?}");
        }
        for b in 0u8..=0x7f {
            let k = char::from(b).to_string();
            let json = serde_json::to_string(&k).expect("string");
            assert_eq!(quoted_len(&k), json.len(), "byte {b:#x}");
        }
    }

    #[test]
    fn the_size_field_gives_the_length_of_the_data_text() {
        let r = sample();
        let fields = record_fields(&r).expect("fields");
        let map = to_map(fields);
        let ds = map.get("ds").expect("size field");
        let parts: Vec<usize> = ds.split(' ').map(|p| p.parse().expect("number")).collect();
        let [version, sum, count] = parts[..] else {
            panic!("{ds:?}")
        };
        assert_eq!(version, 7);
        assert_eq!(count, 5);
        assert_eq!(2 + sum + count - 1, r.data.len_bytes());
        // Empty data: nothing summed; the text is `{}`.
        assert_eq!(size_field(3, []), "3 0 0");
    }

    #[test]
    fn hex_round_trips() {
        let k = SessionToken::generate().expect("rng").key();
        assert_eq!(key_from_hex(&k.to_hex()), Some(k));
        assert_eq!(key_from_hex("zz"), None);
        assert_eq!(user_digest(&UserId::new("a")).len(), 32);
    }
}
