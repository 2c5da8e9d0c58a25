//! [`MySqlStore`]'s [`SessionStore`] face: each operation as its statements, in a transaction
//! where it must be atomic.

use super::*;

#[async_trait::async_trait]
impl SessionStore for MySqlStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.bounded(async {
            let Some(user) = &record.user else {
                // Anonymous: one statement, no epoch applies.
                return match bind_record(sqlx::query(sql::CREATE), record)
                    .execute(&self.inner.pool)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_duplicate(&e) => Err(StoreError::Collision),
                    Err(e) => Err(map_err(e)),
                };
            };
            retrying(|| async move {
                let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
                if plan::is_stale(record, lock_user_shared(&mut tx, user).await?) {
                    // Dropping `tx` rolls back; nothing was written.
                    return Err(StoreError::AuthorizationChanged);
                }
                match bind_record(sqlx::query(sql::CREATE), record)
                    .execute(&mut *tx)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_duplicate(&e) => return Err(StoreError::Collision),
                    Err(e) => return Err(map_err(e)),
                }
                tx.commit().await.map_err(map_err)
            })
            .await
        })
        .await
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(sql::LOAD)
                .bind(&key.as_bytes()[..])
                .bind(to_db(now))
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(map_err)?;
            row.as_ref().map(record_from_row).transpose()
        })
        .await
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        self.bounded(retrying(|| {
            self.try_save(key, expected_version, changes, now)
        }))
        .await
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        let now = to_db(now);
        self.bounded(retrying(|| async move {
            let done = sqlx::query(sql::TOUCH)
                .bind(now)
                .bind(now)
                .bind(&key.as_bytes()[..])
                .bind(now)
                .execute(&self.inner.pool)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        }))
        .await
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.bounded(retrying(|| {
            self.try_rotate(old, expected_version, new, now)
        }))
        .await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(sql::DELETE)
                .bind(&key.as_bytes()[..])
                .execute(&self.inner.pool)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let except = except.map(|k| &k.as_bytes()[..]);
        let hash = user_hash(user);
        self.bounded(retrying(|| async move {
            // One transaction that holds the user's row: no sign-in of the user can be written
            // between the change time and the deletion.
            let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
            let (before, changed) = record_change(&mut tx, user, now).await?;
            let done = sqlx::query(sql::DELETE_BY_USER)
                .bind(&hash[..])
                .bind(user.as_str().as_bytes())
                .bind(except)
                .bind(except)
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if let Some(kept) = except {
                sqlx::query(sql::STAMP_KEPT)
                    .bind(changed)
                    .bind(&hash[..])
                    .bind(user.as_str().as_bytes())
                    .bind(kept)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected())
        }))
        .await
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(sql::LIST_BY_USER)
                .bind(&user_hash(user)[..])
                .bind(user.as_str().as_bytes())
                .bind(to_db(now))
                .fetch_all(&self.inner.pool)
                .await
                .map_err(map_err)?;
            rows.iter().map(record_from_row).collect()
        })
        .await
    }

    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let hash = user_hash(user);
        let roles = roles_to_db(roles).into_bytes();
        let roles = &roles[..];
        self.bounded(retrying(|| async move {
            let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
            let (before, changed) = record_change(&mut tx, user, now).await?;
            sqlx::query(sql::DELETE_STALE_OF_USER)
                .bind(&hash[..])
                .bind(user.as_str().as_bytes())
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let done = sqlx::query(sql::SET_ROLES_FOR_USER)
                .bind(roles)
                .bind(changed)
                .bind(&hash[..])
                .bind(user.as_str().as_bytes())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected())
        }))
        .await
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(sql::DELETE_BY_HANDLE)
                .bind(&user_hash(user)[..])
                .bind(user.as_str().as_bytes())
                .bind(&handle.as_bytes()[..])
                .execute(&self.inner.pool)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.delete_expired(now, limit).await
    }
}
