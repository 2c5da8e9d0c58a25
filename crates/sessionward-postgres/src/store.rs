use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::row_plan::AUTHZ_RETENTION;
use sessionward_core::{
    ChangeSet, DataError, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey,
    SessionRecord, SessionStore, StoreError, Sweeper, SweeperStatus, Timestamp, UserId,
};
use sqlx::PgPool;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryAs;

use crate::builder::PostgresStoreBuilder;
use crate::row::{map_err, record_from_row, secs, to_db, version_from_db, version_to_db};
use crate::sql;

/// The table that records which of this crate's migrations ran, in the schema the pool's
/// `search_path` names first. Separate from `_sqlx_migrations`, so the application's own sqlx
/// migrations and ours never see each other's.
pub const MIGRATIONS_TABLE: &str = "_sessionward_migrations";

/// Default number of rows one sweeper statement deletes.
pub(crate) const DEFAULT_SWEEP_BATCH: usize = 1_000;

/// A [`SessionStore`] in PostgreSQL, on the application's own [`PgPool`].
///
/// One table (`sessionward_sessions`, created by [`migrate`](Self::migrate)) keyed by the
/// SHA-256 of the token, and one of per-user authorization changes
/// (`sessionward_user_authz`); the token never reaches the database. Every operation is one
/// statement, except [`rotate`](SessionStore::rotate),
/// [`set_roles_for_user`](SessionStore::set_roles_for_user) and
/// [`delete_by_user`](SessionStore::delete_by_user), which are one transaction each; a load
/// is one round trip that also reads the user's last authorization change. Expired rows are never returned and are deleted by
/// [`delete_expired`](SessionStore::delete_expired), which the optional background sweeper
/// calls (on by default, every 60 s, stopping when the store is dropped).
///
/// The table is found through the pool's `search_path`: to keep sessions in their own schema,
/// connect with `PgConnectOptions::options([("search_path", "sessions")])`.
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
    /// Dropped with the last clone of the store, which ends the sweeper at once.
    pub(crate) sweeper: Arc<Sweeper>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) operation_timeout: Duration,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool_size", &self.inner.pool.size())
            .field("operation_timeout", &self.inner.operation_timeout)
            .field("sweeper", &self.sweeper)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store on `pool` with the defaults: operations bounded to 10 s, and a background
    /// sweeper every 60 s on the system clock if a Tokio runtime is running.
    ///
    /// Call [`migrate`](Self::migrate) once at start-up before using it.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool).build()
    }

    /// A builder for the operation timeout and the sweeper.
    #[must_use]
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(pool)
    }

    /// Creates or upgrades the session table and its indexes (the SQL in this crate's
    /// `migrations/`, embedded with `sqlx::migrate!`), in the first schema of the pool's
    /// `search_path`.
    ///
    /// Safe to call from every instance at start-up at once: sqlx holds a PostgreSQL advisory
    /// lock while it migrates, so one instance applies the migrations and the others wait, then
    /// find them applied. Applied migrations are recorded in [`MIGRATIONS_TABLE`].
    ///
    /// # Errors
    /// [`StoreError::Backend`] with the [`sqlx::migrate::MigrateError`] as its source.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
            .run(&self.inner.pool)
            .await
            .map_err(StoreError::backend)
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Number of rows in the table: live sessions plus expired ones not yet swept.
    ///
    /// # Errors
    /// As for any store operation.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessionward_sessions")
                .fetch_one(&self.inner.pool)
                .await
                .map_err(map_err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// The state of the background sweeper.
    #[must_use]
    pub fn sweeper(&self) -> SweeperStatus {
        self.sweeper.status()
    }

    /// Runs `op` within the operation timeout.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.inner.bounded(op).await
    }
}

impl Inner {
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.operation_timeout, op).await {
            Ok(result) => result,
            Err(elapsed) => Err(StoreError::Timeout(Some(Box::new(elapsed)))),
        }
    }

    /// Deletes up to `limit` expired records through [`sql::SWEEP`], then forgets up to
    /// `limit` authorization changes nothing needs any more.
    ///
    /// A sweep step takes due rows, some of them still live (stamped, not deleted), so one
    /// step that deletes fewer than asked does not mean that nothing expired is left: steps
    /// repeat until `limit` rows are deleted or a step finds fewer due rows than it asked for.
    /// Every row a step takes leaves the due set (deleted, or stamped with an expiry later
    /// than `now`), so the steps end; each is bounded by the operation timeout. Answering
    /// fewer than `limit` therefore still means "nothing more to delete at `now`" to the
    /// sweeper, as the contract has it.
    pub(crate) async fn delete_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        let mut deleted = 0_u64;
        while deleted < limit {
            let want = i64::try_from(limit - deleted).unwrap_or(i64::MAX);
            let (due, gone): (i64, i64) = self
                .bounded(async {
                    sqlx::query_as(sql::SWEEP)
                        .bind(to_db(now))
                        .bind(want)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)
                })
                .await?;
            deleted += u64::try_from(gone).unwrap_or(0);
            if due < want {
                break;
            }
        }
        // Then the users' authorization changes nothing needs any more (at most a batch; not
        // counted: the answer is about sessions).
        let batch = i64::try_from(limit).unwrap_or(i64::MAX);
        self.bounded(async {
            sqlx::query(sql::FORGET_AUTHZ)
                .bind(to_db(now - AUTHZ_RETENTION))
                .bind(batch)
                .execute(&self.pool)
                .await
                .map_err(map_err)
        })
        .await?;
        Ok(deleted)
    }
}

/// The first statement of a per-user change ([`sql::LOCK_USER`]): the user's row, created if
/// need be and locked until the transaction ends, and the change time it held.
async fn lock_user(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    user: &UserId,
) -> Result<time::OffsetDateTime, StoreError> {
    sqlx::query_scalar(sql::LOCK_USER)
        .bind(user.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)
}

/// Reads the answer of [`sql::SAVE`]: gone, conflict or too large, in that order of precedence
/// (as the contract's reference store decides them).
fn save_outcome(
    expected_version: Option<u64>,
    changes: &ChangeSet,
    saved: Option<i64>,
    current: Option<i64>,
    size: Option<i64>,
) -> Result<SaveOutcome, StoreError> {
    if let Some(version) = saved {
        return Ok(SaveOutcome::Saved {
            version: version_from_db(version)?,
        });
    }
    let Some(current) = current else {
        return Ok(SaveOutcome::Gone);
    };
    let current_version = version_from_db(current)?;
    let stale = changes.is_structural() && expected_version.is_some_and(|v| v != current_version);
    if let (false, Some(limit), Some(size)) = (stale, changes.data_limit, size) {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > limit {
            return Err(StoreError::Data(DataError::TooLarge { size, limit }));
        }
    }
    Ok(SaveOutcome::Conflict { current_version })
}

/// Runs [`sql::CREATE`] for `r` on `conn`: `Ok(true)` created, `Ok(false)` the key exists,
/// [`StoreError::AuthorizationChanged`] a signed-in record that is not current.
async fn insert<'c, E>(executor: E, r: &SessionRecord) -> Result<bool, StoreError>
where
    E: sqlx::PgExecutor<'c>,
{
    let (created, stale): (bool, bool) = bind_record(sqlx::query_as(sql::CREATE), r)
        .fetch_one(executor)
        .await
        .map_err(map_err)?;
    if stale && r.user.is_some() {
        return Err(StoreError::AuthorizationChanged);
    }
    Ok(created)
}

/// Binds a record's columns in the order of [`sql::CREATE`].
fn bind_record<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    r: &'q SessionRecord,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(&r.key.as_bytes()[..])
        .bind(&r.handle.as_bytes()[..])
        .bind(r.user.as_ref().map(UserId::as_str))
        .bind(r.roles.iter().collect::<Vec<_>>())
        .bind(r.data.as_json())
        .bind(to_db(r.created_at))
        .bind(to_db(r.last_seen_at))
        .bind(r.authenticated_at.map(to_db))
        .bind(secs(r.idle_timeout))
        .bind(to_db(r.absolute_expires_at))
        .bind(r.user_agent.as_deref())
        .bind(version_to_db(r.version))
        .bind(to_db(r.authorized_at))
        .bind(r.persistent)
}

#[async_trait::async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.bounded(async {
            if insert(&self.inner.pool, record).await? {
                Ok(())
            } else {
                Err(StoreError::Collision)
            }
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
        let set = serde_json::to_string(&changes.data.set)
            .map_err(|e| StoreError::Data(DataError::from(e)))?;
        let removed: Vec<&str> = changes.data.remove.iter().map(String::as_str).collect();
        // As in `SessionData::apply`, a save that changes no data key is never refused for
        // size (a record over a lowered limit can still be touched or have its lifetime changed).
        let limit = changes
            .data_limit
            .filter(|_| !changes.data.is_empty())
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        self.bounded(async {
            let saved: Option<i64> = sqlx::query_scalar(sql::SAVE)
                .bind(&key.as_bytes()[..])
                .bind(to_db(now))
                .bind(changes.is_structural() && expected_version.is_some())
                .bind(expected_version.map(version_to_db))
                .bind(changes.data.clear)
                .bind(&removed)
                .bind(&set)
                .bind(changes.last_seen_at.map(to_db))
                .bind(changes.absolute_expires_at.map(to_db))
                .bind(changes.idle_timeout.map(secs))
                .bind(limit)
                // Data and activity only: committed asynchronously (docs/stores.md). A
                // lifetime change is committed synchronously.
                .bind(!changes.is_structural())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(map_err)?;
            if saved.is_some() {
                return save_outcome(expected_version, changes, saved, None, None);
            }
            // Refused: find out why (gone, another version, or too large).
            let why: Option<(i64, Option<i64>)> = sqlx::query_as(sql::SAVE_REFUSED)
                .bind(&key.as_bytes()[..])
                .bind(to_db(now))
                .bind(limit)
                .bind(changes.data.clear)
                .bind(&removed)
                .bind(&set)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(map_err)?;
            let (current, size) = why.map_or((None, None), |(v, s)| (Some(v), s));
            save_outcome(expected_version, changes, None, current, size)
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
            let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
            // A signed-in successor: the user's row first (shared), in the order the per-user
            // changes take the rows, so that a rotation and a demotion of one user serialize
            // instead of deadlocking; a change that holds the row is waited for here.
            if let Some(user) = &new.user {
                sqlx::query(sql::LOCK_USER_SHARED)
                    .bind(user.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            // Locking the old row next: a concurrent rotation of the same record waits here and
            // then finds nothing, so exactly one successor is created; a concurrent save or role
            // change is waited for, so its version is the one compared.
            let (found, live, current, taken): (bool, bool, Option<i64>, bool) =
                sqlx::query_as(sql::ROTATE_TAKE_OLD)
                    .bind(&old.as_bytes()[..])
                    .bind(to_db(now))
                    .bind(expected_version.map(version_to_db))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
            match (found, live, taken) {
                (false, _, _) => {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(RotateOutcome::Gone);
                }
                (true, false, _) => {
                    // Expired: keep the deletion (it was garbage anyway), create nothing.
                    tx.commit().await.map_err(map_err)?;
                    return Ok(RotateOutcome::Gone);
                }
                (true, true, false) => {
                    // Live at another version: nothing changes.
                    tx.rollback().await.map_err(map_err)?;
                    let current = current.ok_or_else(|| {
                        StoreError::backend("rotate: a live row without a version")
                    })?;
                    return Ok(RotateOutcome::Conflict {
                        current_version: version_from_db(current)?,
                    });
                }
                (true, true, true) => {}
            }
            // On a refusal (a collision, or a successor that is not current) the rollback puts
            // the old record back: nothing changed.
            match insert(&mut *tx, new).await {
                Ok(true) => {}
                Ok(false) => {
                    tx.rollback().await.map_err(map_err)?;
                    return Err(StoreError::Collision);
                }
                Err(e) => {
                    tx.rollback().await.map_err(map_err)?;
                    return Err(e);
                }
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
            let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
            let before = lock_user(&mut tx, user).await?;
            let done = sqlx::query(sql::DELETE_BY_USER)
                .bind(user.as_str())
                .bind(except.map(|k| &k.as_bytes()[..]))
                .bind(to_db(now))
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
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
            let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
            let before = lock_user(&mut tx, user).await?;
            let done = sqlx::query(sql::SET_ROLES_FOR_USER)
                .bind(user.as_str())
                .bind(roles.iter().collect::<Vec<_>>())
                .bind(to_db(now))
                .bind(before)
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
