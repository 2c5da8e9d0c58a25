//! The store operations in cluster mode: the writes and reads that span a record's slot and its
//! user's, ordered write-then-check (`docs/redis.md`).

use super::*;
use scripts::CLUSTER;

/// Deletes a record this store just wrote (a refused or failed create), ignoring failures:
/// its token was never handed out, so a leftover can never be presented.
async fn undo(inner: &Inner, key: &SessionKey, digest: Option<&str>) {
    let mut inv = CLUSTER.drop_record.prepare_invoke();
    inv.key(inner.record_key(key))
        .key(inner.expiry_key_of(key))
        .arg(key.to_hex())
        .arg(digest.unwrap_or(""));
    if let Err(e) = inner.script::<i64>(&inv).await {
        tracing::debug!(error = %e, "RedisStore (cluster): could not undo a refused record");
    }
}

/// Removes members from a user's index (one `SREM` on the user's slot). A failure is logged
/// and ignored: a member whose record is gone is skipped and dropped by later operations.
async fn unindex(inner: &Inner, digest: &str, hexes: &[String]) {
    if hexes.is_empty() {
        return;
    }
    let cmd = redis::cmd("SREM")
        .arg(inner.user_key(digest))
        .arg(hexes)
        .to_owned();
    if let Err(e) = inner.query::<i64>(&cmd).await {
        tracing::debug!(error = %e, "RedisStore (cluster): could not trim a user index");
    }
}

/// The second step of writing a signed-in record: add it to its user's index, in one script on
/// the user's slot that also reads the user's change time. If the change is later than the
/// record's `authorized_at`, the record is deleted again and the write refused.
///
/// Ordering (`docs/redis.md`): a per-user operation first records the change time and reads
/// the index in one script on the same slot. Either this script ran first (then the operation
/// finds the record in the index and updates or deletes it) or after (then this script sees
/// the change time and refuses). The record was written before this script, so the operation
/// always finds it in its own slot.
async fn admit(
    inner: &Inner,
    key: &SessionKey,
    digest: &str,
    authorized_at: Timestamp,
) -> Result<(), StoreError> {
    let mut inv = CLUSTER.user_add.prepare_invoke();
    inv.key(inner.user_key(digest))
        .key(inner.epoch_key(digest))
        .arg(key.to_hex())
        .arg(authorized_at.unix());
    match inner.script::<i64>(&inv).await {
        Ok(1) => Ok(()),
        Ok(0) => {
            undo(inner, key, Some(digest)).await;
            Err(StoreError::AuthorizationChanged)
        }
        Ok(n) => Err(unexpected("user_add", &Value::Int(n))),
        Err(e) => {
            // The record may or may not be indexed; the caller fails the request, so its token
            // is never delivered. Remove the record if the cluster still answers.
            undo(inner, key, Some(digest)).await;
            Err(e)
        }
    }
}

/// Writes a record into its bucket (the `create` script, without the user's keys).
async fn write_record(inner: &Inner, record: &SessionRecord) -> Result<bool, StoreError> {
    let fields = codec::record_fields(record)?;
    let digest = record.user.as_ref().map(codec::user_digest);
    let expires_at = record.expires_at();
    let mut inv = SCRIPTS.create.prepare_invoke();
    inv.key(inner.record_key(&record.key))
        .key(inner.expiry_key_of(&record.key))
        .arg(record.key.to_hex())
        .arg(digest.as_deref().unwrap_or(""))
        .arg(expires_at.unix())
        .arg(ttl_secs(expires_at, record.last_seen_at, inner.ttl_slack))
        .arg(record.authorized_at.unix())
        .arg(fields);
    let created: i64 = inner.script(&inv).await?;
    Ok(created == 1)
}

/// `create`: the record into its bucket, then (signed in) [`admit`] on the user's slot.
pub(crate) async fn create(inner: &Inner, record: &SessionRecord) -> Result<(), StoreError> {
    if !write_record(inner, record).await? {
        return Err(StoreError::Collision);
    }
    if let Some(user) = &record.user {
        admit(
            inner,
            &record.key,
            &codec::user_digest(user),
            record.authorized_at,
        )
        .await?;
    }
    Ok(())
}

/// Runs `take_old` on the old record: `take` deletes it when live at the expected version.
async fn take_old(
    inner: &Inner,
    old: &SessionKey,
    expected_version: Option<u64>,
    now: Timestamp,
    take: bool,
) -> Result<(i64, String), StoreError> {
    let mut inv = CLUSTER.take_old.prepare_invoke();
    inv.key(inner.record_key(old))
        .key(inner.expiry_key_of(old))
        .arg(now.unix())
        .arg(old.to_hex())
        .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
        .arg(if take { "1" } else { "0" });
    let reply: Value = inner.script(&inv).await?;
    let Value::Array(items) = &reply else {
        return Err(unexpected("rotate", &reply));
    };
    let code = items
        .first()
        .and_then(int_of)
        .ok_or_else(|| unexpected("rotate", &reply))?;
    let second = match items.get(1) {
        Some(Value::Int(n)) => n.to_string(),
        Some(v) => string_of(v.clone()).unwrap_or_default(),
        None => String::new(),
    };
    Ok((code, second))
}

fn rotate_outcome(code: i64, second: &str) -> Result<Option<RotateOutcome>, StoreError> {
    match code {
        1 => Ok(None),
        0 => Ok(Some(RotateOutcome::Gone)),
        2 => Ok(Some(RotateOutcome::Conflict {
            current_version: second
                .parse()
                .map_err(|_| StoreError::backend("unexpected version in a rotate reply"))?,
        })),
        _ => Err(StoreError::backend("unexpected reply from a rotate script")),
    }
}

/// `rotate` across slots: check the old record, write the new one, admit it to its user,
/// then take (delete) the old one at the expected version; any refusal after the write undoes
/// it, so the old record stays as it was.
pub(crate) async fn rotate(
    inner: &Inner,
    old: &SessionKey,
    expected_version: Option<u64>,
    new: &SessionRecord,
    now: Timestamp,
) -> Result<RotateOutcome, StoreError> {
    let (code, second) = take_old(inner, old, expected_version, now, false).await?;
    if let Some(out) = rotate_outcome(code, &second)? {
        if code == 0 && !second.is_empty() {
            unindex(inner, &second, &[old.to_hex()]).await;
        }
        return Ok(out);
    }
    if !write_record(inner, new).await? {
        return Err(StoreError::Collision);
    }
    let digest = new.user.as_ref().map(codec::user_digest);
    if let Some(d) = &digest {
        admit(inner, &new.key, d, new.authorized_at).await?;
    }
    let taken = take_old(inner, old, expected_version, now, true).await;
    let (code, second) = match taken {
        Ok(v) => v,
        Err(e) => {
            // The old record may or may not be gone; the request fails, the new token is
            // never delivered. Remove the new record if the cluster still answers.
            undo(inner, &new.key, digest.as_deref()).await;
            return Err(e);
        }
    };
    if let Some(out) = rotate_outcome(code, &second)? {
        // The old record changed or went away between the check and now: no successor.
        undo(inner, &new.key, digest.as_deref()).await;
        if let Some(d) = &digest {
            unindex(inner, d, &[new.key.to_hex()]).await;
        }
        return Ok(out);
    }
    if !second.is_empty() {
        unindex(inner, &second, &[old.to_hex()]).await;
    }
    Ok(RotateOutcome::Rotated)
}

/// `delete`: one script on the record's slot, then the user index entry.
pub(crate) async fn delete(inner: &Inner, key: &SessionKey) -> Result<bool, StoreError> {
    let (code, uk) = take_old(inner, key, None, Timestamp::from_unix(i64::MIN), true).await?;
    if !uk.is_empty() {
        unindex(inner, &uk, &[key.to_hex()]).await;
    }
    Ok(code == 1)
}

/// The change time (when `bump`) or its stored value, and the members of the user's index.
async fn user_members(
    inner: &Inner,
    digest: &str,
    bump_at: Option<Timestamp>,
) -> Result<(Option<i64>, Vec<String>), StoreError> {
    let mut inv = match bump_at {
        Some(_) => CLUSTER.bump.prepare_invoke(),
        None => CLUSTER.read_user.prepare_invoke(),
    };
    inv.key(inner.user_key(digest)).key(inner.epoch_key(digest));
    if let Some(now) = bump_at {
        inv.arg(now.unix()).arg(inner.epoch_keep());
    }
    let reply: Value = inner.script(&inv).await?;
    let Value::Array(items) = reply else {
        return Err(unexpected("user index", &reply));
    };
    let mut it = items.into_iter();
    let changed = it.next().as_ref().and_then(int_of);
    let members = it.filter_map(string_of).collect();
    Ok((changed, members))
}

/// Runs a per-record script of a per-user operation: KEYS record and its bucket's expiry
/// index, ARGV user id, key hex, uk, then `extra`.
async fn per_record(
    inner: &Inner,
    script: &Script,
    user: &UserId,
    digest: &str,
    hex: &str,
    extra: &[String],
) -> Result<Option<i64>, StoreError> {
    let Some(key) = codec::key_from_hex(hex) else {
        return Ok(None);
    };
    let mut inv = script.prepare_invoke();
    inv.key(inner.record_key(&key))
        .key(inner.expiry_key_of(&key))
        .arg(user.as_str())
        .arg(hex)
        .arg(digest);
    for a in extra {
        inv.arg(a);
    }
    Ok(Some(inner.script(&inv).await?))
}

/// `delete_by_user`: record the change time and read the index (one script, user slot), then
/// delete each listed record but `except` (one script each, record slots) and stamp `except`.
pub(crate) async fn delete_by_user(
    inner: &Inner,
    user: &UserId,
    except: Option<&SessionKey>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let digest = codec::user_digest(user);
    let (changed, members) = user_members(inner, &digest, Some(now)).await?;
    let changed = changed.ok_or_else(|| StoreError::backend("no change time in a reply"))?;
    let keep = except.map(SessionKey::to_hex);
    let mut deleted = 0;
    let mut gone = Vec::new();
    for m in members {
        if keep.as_deref() == Some(m.as_str()) {
            if let Some(key) = except {
                let mut inv = CLUSTER.rec_stamp.prepare_invoke();
                inv.key(inner.record_key(key))
                    .arg(user.as_str())
                    .arg(changed);
                let _: i64 = inner.script(&inv).await?;
            }
            continue;
        }
        match per_record(inner, &CLUSTER.rec_delete_for_user, user, &digest, &m, &[]).await? {
            Some(1) => {
                deleted += 1;
                gone.push(m);
            }
            Some(0) | None => gone.push(m),
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    Ok(deleted)
}

/// `set_roles_for_user`: record the change time and read the index, then give each listed
/// record the roles and the change time.
pub(crate) async fn set_roles_for_user(
    inner: &Inner,
    user: &UserId,
    roles: &RoleSet,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let digest = codec::user_digest(user);
    let (changed, members) = user_members(inner, &digest, Some(now)).await?;
    let changed = changed.ok_or_else(|| StoreError::backend("no change time in a reply"))?;
    let extra = [codec::roles_json(roles), changed.to_string()];
    let mut n = 0;
    let mut gone = Vec::new();
    for m in members {
        match per_record(inner, &CLUSTER.rec_set_roles, user, &digest, &m, &extra).await? {
            Some(1) => n += 1,
            Some(0) | None => gone.push(m),
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    Ok(n)
}

/// `list_by_user`: the change time and the index (one script, user slot), then one `HGETALL`
/// per member; records that are not current (a per-user change is still reaching them) are
/// left out.
pub(crate) async fn list_by_user(
    inner: &Inner,
    user: &UserId,
    now: Timestamp,
) -> Result<Vec<SessionRecord>, StoreError> {
    let digest = codec::user_digest(user);
    let (changed, members) = user_members(inner, &digest, None).await?;
    let changed = changed.map(Timestamp::from_unix);
    let mut out = Vec::with_capacity(members.len());
    let mut gone = Vec::new();
    for m in members {
        let Some(key) = codec::key_from_hex(&m) else {
            gone.push(m);
            continue;
        };
        let cmd = redis::cmd("HGETALL").arg(inner.record_key(&key)).to_owned();
        let reply: Value = inner.query(&cmd).await?;
        let fields =
            fields_of(reply).ok_or_else(|| StoreError::corrupt("a record is not a hash"))?;
        match codec::decode(key, &fields)? {
            None => gone.push(m),
            Some(r)
                if r.user.as_ref() == Some(user)
                    && r.is_live(now)
                    && r.is_authorized_after(changed) =>
            {
                out.push(r);
            }
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    out.sort_by_key(|r| (r.created_at, r.handle));
    Ok(out)
}

/// `delete_by_handle`: the index, then each member until the handle is found.
pub(crate) async fn delete_by_handle(
    inner: &Inner,
    user: &UserId,
    handle: &SessionHandle,
) -> Result<bool, StoreError> {
    let digest = codec::user_digest(user);
    let (_, members) = user_members(inner, &digest, None).await?;
    let extra = [handle.to_string()];
    let mut gone = Vec::new();
    let mut found = false;
    for m in members {
        match per_record(inner, &CLUSTER.rec_delete_handle, user, &digest, &m, &extra).await? {
            Some(1) => {
                found = true;
                gone.push(m);
                break;
            }
            Some(0) | None => gone.push(m),
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    Ok(found)
}

/// `delete_expired` over the buckets, from where the last call stopped: per bucket, the
/// expired members of its expiry index (one `ZRANGE`), then one script per member on its
/// record's slot, then one `SREM` per user whose index held it. Stops after `limit` deletions
/// or `limit + 1000` examined members.
pub(crate) async fn delete_expired(
    inner: &Inner,
    now: Timestamp,
    limit: usize,
) -> Result<u64, StoreError> {
    let start = inner.sweep_cursor.load(Ordering::Relaxed) % BUCKETS;
    let budget = limit.saturating_add(1000);
    let (mut deleted, mut examined) = (0usize, 0usize);
    for i in 0..BUCKETS {
        if deleted >= limit || examined >= budget {
            break;
        }
        let bucket = (start + i) % BUCKETS;
        inner.sweep_cursor.store(bucket, Ordering::Relaxed);
        let expiry_key = format!("{{{}:{bucket:02x}}}:x", inner.namespace);
        let want = (limit - deleted).min(500);
        let cmd = redis::cmd("ZRANGE")
            .arg(&expiry_key)
            .arg("-inf")
            .arg(now.unix())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(want)
            .to_owned();
        let batch: Vec<String> = inner.query(&cmd).await?;
        let mut by_user: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for m in batch {
            examined += 1;
            let (hex, uk) = m.split_once(':').unwrap_or((m.as_str(), ""));
            let Some(key) = codec::key_from_hex(hex) else {
                continue;
            };
            let mut inv = CLUSTER.expire_one.prepare_invoke();
            inv.key(inner.record_key(&key))
                .key(&expiry_key)
                .arg(now.unix())
                .arg(&m);
            let code: i64 = inner.script(&inv).await?;
            if code == 1 {
                deleted += 1;
            }
            if (code == 0 || code == 1) && !uk.is_empty() {
                by_user
                    .entry(uk.to_owned())
                    .or_default()
                    .push(hex.to_owned());
            }
        }
        for (uk, hexes) in by_user {
            unindex(inner, &uk, &hexes).await;
        }
        if deleted < limit {
            // This bucket has no more expired members: the next call starts at the next one.
            inner
                .sweep_cursor
                .store((bucket + 1) % BUCKETS, Ordering::Relaxed);
        }
    }
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}
