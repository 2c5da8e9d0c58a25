//! [`RedisStore`]'s [`SessionStore`] face: each operation as one script on a single node, or
//! the cluster's operations across slots.

use std::collections::HashMap;

use redis::Value;
use sessionward_core::{
    ChangeSet, DataError, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey,
    SessionRecord, SessionStore, StoreError, Timestamp, UserId,
};

use super::{RedisStore, fields_of, int_of, string_of, ttl_secs, unexpected};
use crate::codec::{self, DATA_PREFIX};
use crate::scripts::SCRIPTS;

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::create(&self.inner, record))
                .await;
        }
        let inner = &self.inner;
        let fields = codec::record_fields(record)?;
        let digest = record.user.as_ref().map(codec::user_digest);
        let expires_at = record.expires_at();
        let mut inv = SCRIPTS.create.prepare_invoke();
        inv.key(inner.record_key(&record.key))
            .key(&inner.expiry_key);
        if let Some(d) = &digest {
            inv.key(inner.user_key(d)).key(inner.epoch_key(d));
        }
        inv.arg(record.key.to_hex())
            .arg(digest.as_deref().unwrap_or(""))
            .arg(expires_at.unix())
            .arg(ttl_secs(expires_at, record.last_seen_at, inner.ttl_slack))
            .arg(record.authorized_at.unix())
            .arg(fields);
        let created: i64 = inner.script(&inv).await?;
        match created {
            1 => Ok(()),
            -2 => Err(StoreError::AuthorizationChanged),
            _ => Err(StoreError::Collision),
        }
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let inner = &self.inner;
        let cmd = redis::cmd("HGETALL").arg(inner.record_key(key)).to_owned();
        let fields: HashMap<String, String> = inner.query(&cmd).await?;
        Ok(codec::decode(*key, &fields)?.filter(|r| r.is_live(now)))
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        let inner = &self.inner;
        let flag = |b: bool| if b { "1" } else { "0" };
        let opt = |v: Option<i64>| v.map_or_else(String::new, |n| n.to_string());
        let data = &changes.data;
        // As in `SessionData::apply`, a save that changes no data key is never refused for
        // size (a record over a lowered limit can still be touched or have its lifetime changed).
        let limit = changes.data_limit.filter(|_| !data.is_empty());
        let mut inv = SCRIPTS.save.prepare_invoke();
        inv.key(inner.record_key(key))
            .key(inner.expiry_key_of(key))
            .arg(now.unix())
            .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
            .arg(flag(changes.is_structural() && expected_version.is_some()))
            .arg(flag(data.clear))
            .arg(opt(changes.last_seen_at.map(Timestamp::unix)))
            .arg(opt(changes.absolute_expires_at.map(Timestamp::unix)))
            .arg(
                changes
                    .idle_timeout
                    .map_or_else(String::new, |d| codec::secs(d).to_string()),
            )
            .arg(inner.ttl_slack)
            .arg(key.to_hex())
            .arg(limit.map_or_else(String::new, |l| l.to_string()))
            .arg(data.set.len())
            .arg(data.remove.len());
        for (k, v) in &data.set {
            inv.arg(format!("{DATA_PREFIX}{k}")).arg(v.to_string());
        }
        for k in data.set.keys() {
            inv.arg(codec::quoted_len(k));
        }
        for k in &data.remove {
            inv.arg(format!("{DATA_PREFIX}{k}"));
        }
        for k in &data.remove {
            inv.arg(codec::quoted_len(k));
        }
        let reply: Value = inner.script(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected("save", &reply));
        };
        let number = || {
            items
                .get(1)
                .and_then(int_of)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| unexpected("save", &reply))
        };
        match items.first().and_then(int_of) {
            Some(0) => Ok(SaveOutcome::Gone),
            Some(1) => Ok(SaveOutcome::Saved { version: number()? }),
            Some(2) => Ok(SaveOutcome::Conflict {
                current_version: number()?,
            }),
            Some(3) => match limit {
                Some(limit) => Err(StoreError::Data(DataError::TooLarge {
                    size: usize::try_from(number()?).unwrap_or(usize::MAX),
                    limit,
                })),
                None => Err(unexpected("save", &reply)),
            },
            _ => Err(unexpected("save", &reply)),
        }
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut inv = SCRIPTS.touch.prepare_invoke();
        inv.key(inner.record_key(key))
            .key(inner.expiry_key_of(key))
            .arg(now.unix())
            .arg(inner.ttl_slack)
            .arg(key.to_hex());
        let touched: i64 = inner.script(&inv).await?;
        Ok(touched == 1)
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::rotate(
                    &self.inner,
                    old,
                    expected_version,
                    new,
                    now,
                ))
                .await;
        }
        let inner = &self.inner;
        let fields = codec::record_fields(new)?;
        let digest = new.user.as_ref().map(codec::user_digest);
        let expires_at = new.expires_at();
        let mut inv = SCRIPTS.rotate.prepare_invoke();
        inv.key(inner.record_key(old))
            .key(inner.record_key(&new.key))
            .key(&inner.expiry_key);
        if let Some(d) = &digest {
            inv.key(inner.user_key(d)).key(inner.epoch_key(d));
        }
        inv.arg(now.unix())
            .arg(&inner.prefix)
            .arg(old.to_hex())
            .arg(new.key.to_hex())
            .arg(digest.as_deref().unwrap_or(""))
            .arg(expires_at.unix())
            .arg(ttl_secs(expires_at, now, inner.ttl_slack))
            .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
            .arg(new.authorized_at.unix())
            .arg(fields);
        let reply: Value = inner.script(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected("rotate", &reply));
        };
        match items.first().and_then(int_of) {
            Some(1) => Ok(RotateOutcome::Rotated),
            Some(0) => Ok(RotateOutcome::Gone),
            Some(2) => Ok(RotateOutcome::Conflict {
                current_version: items
                    .get(1)
                    .and_then(int_of)
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| unexpected("rotate", &reply))?,
            }),
            Some(-1) => Err(StoreError::Collision),
            Some(-2) => Err(StoreError::AuthorizationChanged),
            _ => Err(unexpected("rotate", &reply)),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::delete(&self.inner, key))
                .await;
        }
        let inner = &self.inner;
        let mut inv = SCRIPTS.delete.prepare_invoke();
        inv.key(inner.record_key(key))
            .key(&inner.expiry_key)
            .arg(&inner.prefix)
            .arg(key.to_hex());
        let deleted: i64 = inner.script(&inv).await?;
        Ok(deleted == 1)
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::delete_by_user(
                    &self.inner,
                    user,
                    except,
                    now,
                ))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.delete_by_user.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .key(inner.epoch_key(&digest))
            .arg(&inner.prefix)
            .arg(user.as_str())
            .arg(&digest)
            .arg(except.map_or_else(String::new, SessionKey::to_hex))
            .arg(now.unix())
            .arg(inner.epoch_keep());
        let n: i64 = inner.script(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::list_by_user(&self.inner, user, now))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.list_by_user.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .arg(&inner.prefix)
            .arg(&digest);
        let reply: Value = inner.script(&inv).await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("list_by_user", &reply));
        };
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(hex), Some(fields)) = (it.next(), it.next()) {
            let key = string_of(hex)
                .as_deref()
                .and_then(codec::key_from_hex)
                .ok_or_else(|| StoreError::corrupt("a user index member is not a key"))?;
            let fields =
                fields_of(fields).ok_or_else(|| StoreError::corrupt("a record is not a hash"))?;
            if let Some(r) = codec::decode(key, &fields)?
                && r.user.as_ref() == Some(user)
                && r.is_live(now)
            {
                out.push(r);
            }
        }
        out.sort_by_key(|r| (r.created_at, r.handle));
        Ok(out)
    }

    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::set_roles_for_user(
                    &self.inner,
                    user,
                    roles,
                    now,
                ))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.set_roles_for_user.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .key(inner.epoch_key(&digest))
            .arg(&inner.prefix)
            .arg(user.as_str())
            .arg(&digest)
            .arg(codec::roles_json(roles))
            .arg(now.unix())
            .arg(inner.epoch_keep());
        let n: i64 = inner.script(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::delete_by_handle(&self.inner, user, handle))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.delete_by_handle.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .arg(&inner.prefix)
            .arg(user.as_str())
            .arg(&digest)
            .arg(handle.to_string());
        let deleted: i64 = inner.script(&inv).await?;
        Ok(deleted == 1)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.delete_expired(now, limit).await
    }
}
