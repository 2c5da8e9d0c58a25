//! [`SqliteStore`]'s [`SessionStore`] face: each operation as its statements, in a transaction
//! where it must be atomic.

use super::*;

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.bounded(async {
            let done = bind_record(sqlx::query(sql::CREATE), record)
                .execute(&self.inner.pool)
                .await
                .map_err(map_err)?;
            if done.rows_affected() > 0 {
                return Ok(());
            }
            // Refused: say why. A change time only moves forward (and is forgotten only a day
            // after the change), so one that refused the insert still refuses it now.
            if let Some(user) = &record.user
                && plan::is_stale(record, changed_at(&self.inner.pool, user).await?)
            {
                return Err(StoreError::AuthorizationChanged);
            }
            Err(StoreError::Collision)
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
        self.bounded(async {
            let mut tx = self.inner.begin_write().await?;
            let current: Option<(i64, String, i64, i64, i64, i64)> = sqlx::query_as(sql::SAVE_READ)
                .bind(&key.as_bytes()[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let current = current.map(|c| Current {
                version: c.0,
                data: c.1,
                last_seen_at: c.2,
                idle_timeout_secs: c.3,
                absolute_expires_at: c.4,
                expires_at: c.5,
            });
            // Dropping `tx` on any early return rolls it back: nothing was written.
            let update = match plan::plan_save(current, expected_version, changes, now)? {
                Ok(update) => update,
                Err(outcome) => return Ok(outcome),
            };
            sqlx::query(sql::SAVE_WRITE)
                .bind(&key.as_bytes()[..])
                .bind(update.data.as_deref())
                .bind(update.last_seen_at)
                .bind(update.idle_timeout_secs)
                .bind(update.absolute_expires_at)
                .bind(update.expires_at)
                .bind(update.version)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(SaveOutcome::Saved {
                version: plan::version_from_db(update.version)?,
            })
        })
        .await
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(sql::TOUCH)
                .bind(&key.as_bytes()[..])
                .bind(to_db(now))
                .execute(&self.inner.pool)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.bounded(async {
            let mut tx = self.inner.begin_write().await?;
            let found: Option<(i64, i64, bool)> = sqlx::query_as(sql::ROTATE_READ)
                .bind(&old.as_bytes()[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let take = plan::plan_rotate(found, expected_version, now)?;
            if let Take::Refuse(outcome) = take {
                return Ok(outcome);
            }
            sqlx::query(sql::DELETE)
                .bind(&old.as_bytes()[..])
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if take == Take::DropExpired {
                // Expired or not current: keep the deletion (it was garbage), create nothing.
                tx.commit().await.map_err(map_err)?;
                return Ok(RotateOutcome::Gone);
            }
            if let Some(user) = &new.user
                && plan::is_stale(new, changed_at(&mut *tx, user).await?)
            {
                // Dropping `tx` rolls back: the old record is back, nothing changed.
                return Err(StoreError::AuthorizationChanged);
            }
            let done = bind_record(sqlx::query(sql::CREATE), new)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                // Dropping `tx` rolls back: the old record is back, nothing changed.
                return Err(StoreError::Collision);
            }
            tx.commit().await.map_err(map_err)?;
            Ok(RotateOutcome::Rotated)
        })
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
        self.bounded(async {
            // One write transaction: no sign-in of the user can be written between the change
            // time and the deletion.
            let mut tx = self.inner.begin_write().await?;
            let (before, changed) = record_change(&mut tx, user, now).await?;
            let done = sqlx::query(sql::DELETE_BY_USER)
                .bind(user.as_str())
                .bind(except.map(|k| &k.as_bytes()[..]))
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if let Some(kept) = except {
                sqlx::query(sql::STAMP_KEPT)
                    .bind(user.as_str())
                    .bind(&kept.as_bytes()[..])
                    .bind(changed)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(sql::LIST_BY_USER)
                .bind(user.as_str())
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
        self.bounded(async {
            let mut tx = self.inner.begin_write().await?;
            let (before, changed) = record_change(&mut tx, user, now).await?;
            sqlx::query(sql::DELETE_STALE_OF_USER)
                .bind(user.as_str())
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let done = sqlx::query(sql::SET_ROLES_FOR_USER)
                .bind(user.as_str())
                .bind(roles_to_db(roles))
                .bind(changed)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(sql::DELETE_BY_HANDLE)
                .bind(user.as_str())
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
