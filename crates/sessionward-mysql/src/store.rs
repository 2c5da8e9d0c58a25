use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{
    ChangeSet, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey, SessionRecord,
    SessionStore, StoreError, Sweeper, SweeperStatus, Timestamp, UserId,
};
use sqlx::MySqlPool;
use sqlx::mysql::{MySql, MySqlArguments};
use sqlx::query::Query;

use crate::builder::MySqlStoreBuilder;
use crate::plan::{self, Current, Take, expires_at, secs, to_db, version_to_db};
use crate::row::{
    ER_LOCK_DEADLOCK, error_number, map_err, record_from_row, roles_to_db, user_hash,
};
use crate::sql;

mod session_store;

/// The table that records which of this crate's migrations ran, in the pool's database.
/// Separate from `_sqlx_migrations`, so the application's own sqlx migrations and ours never
/// see each other's.
pub const MIGRATIONS_TABLE: &str = "_sessionward_migrations";

/// Default number of rows one sweeper statement deletes.
pub(crate) const DEFAULT_SWEEP_BATCH: usize = 1_000;

/// How many times a transaction that InnoDB rolled back as a deadlock's victim is run again.
const DEADLOCK_RETRIES: u32 = 3;

/// A [`SessionStore`] in MySQL 8 or MariaDB (10.6 and later), on the application's own
/// [`MySqlPool`].
///
/// One InnoDB table (`sessionward_sessions`, created by [`migrate`](Self::migrate)) keyed by
/// the SHA-256 of the token; the token never reaches the database. A load is one statement; a
/// save and a rotation are one transaction each, which locks the row with
/// `SELECT .. FOR UPDATE` before deciding, so what it read is what it changes. The per-user
/// changes lock the user's row of `sessionward_user_authz` first and record the change time
/// with the change; signed-in creates and rotations read that row in share mode first; a load
/// reads it in the same statement. Expired rows are never returned and are deleted by [`delete_expired`](SessionStore::delete_expired), which
/// the optional background sweeper calls (on by default, every 60 s, stopping when the store
/// is dropped).
pub struct MySqlStore {
    pub(crate) inner: Arc<Inner>,
    /// Dropped with the last clone of the store, which ends the sweeper at once.
    pub(crate) sweeper: Arc<Sweeper>,
}

pub(crate) struct Inner {
    pub(crate) pool: MySqlPool,
    pub(crate) operation_timeout: Duration,
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("pool_size", &self.inner.pool.size())
            .field("operation_timeout", &self.inner.operation_timeout)
            .field("sweeper", &self.sweeper)
            .finish_non_exhaustive()
    }
}

/// Whether InnoDB rolled the transaction back as a deadlock's victim (it can simply run
/// again: nothing of it was applied).
fn is_deadlock(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(source) => source
            .downcast_ref::<sqlx::Error>()
            .and_then(error_number)
            .is_some_and(|n| n == ER_LOCK_DEADLOCK),
        _ => false,
    }
}

impl MySqlStore {
    /// A store on `pool` with the defaults: operations bounded to 10 s, and a background
    /// sweeper every 60 s on the system clock if a Tokio runtime is running.
    ///
    /// Call [`migrate`](Self::migrate) once at start-up before using it.
    #[must_use]
    pub fn new(pool: MySqlPool) -> Self {
        Self::builder(pool).build()
    }

    /// A builder for the operation timeout and the sweeper.
    #[must_use]
    pub fn builder(pool: MySqlPool) -> MySqlStoreBuilder {
        MySqlStoreBuilder::new(pool)
    }

    /// Creates or upgrades the session table and its indexes (the SQL in this crate's
    /// `migrations/`, embedded with `sqlx::migrate!`), in the pool's database.
    ///
    /// Safe to call from every instance at start-up at once: sqlx holds a named lock
    /// (`GET_LOCK`) while it migrates, so one instance applies the migrations and the others
    /// wait, then find them applied. Applied migrations are recorded in [`MIGRATIONS_TABLE`].
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
    pub fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }

    /// Number of rows in the table: live sessions plus expired ones not yet swept.
    ///
    /// # Errors
    /// As for any store operation.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let n: i64 = sqlx::query_scalar(sql::COUNT)
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

    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.inner.bounded(op).await
    }

    async fn try_save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
        #[allow(clippy::type_complexity)]
        let current: Option<(i64, Vec<u8>, i64, i64, i64, i64, i64, Option<i64>)> =
            sqlx::query_as(sql::SAVE_READ)
                .bind(&key.as_bytes()[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        // A row that is not current is absent to a save.
        let current = current
            .filter(|c| is_current(c.6, c.7))
            .map(|c| {
                let data =
                    String::from_utf8(c.1).map_err(|_| StoreError::corrupt("data is not UTF-8"))?;
                Ok::<_, StoreError>(Current {
                    version: c.0,
                    data,
                    last_seen_at: c.2,
                    idle_timeout_secs: c.3,
                    absolute_expires_at: c.4,
                    expires_at: c.5,
                })
            })
            .transpose()?;
        // Dropping `tx` on any early return rolls it back: nothing was written.
        let update = match plan::plan_save(current, expected_version, changes, now)? {
            Ok(update) => update,
            Err(outcome) => return Ok(outcome),
        };
        sqlx::query(sql::SAVE_WRITE)
            .bind(update.data.as_deref().map(str::as_bytes))
            .bind(update.last_seen_at)
            .bind(update.idle_timeout_secs)
            .bind(update.absolute_expires_at)
            .bind(update.expires_at)
            .bind(update.version)
            .bind(&key.as_bytes()[..])
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(SaveOutcome::Saved {
            version: plan::version_from_db(update.version)?,
        })
    }

    async fn try_rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(map_err)?;
        // A signed-in successor: its user's row first (shared), in the order the per-user
        // changes take the rows, so that a rotation and a demotion of one user wait for each
        // other rather than deadlock; a change that holds the row is waited for here.
        let changed = match &new.user {
            Some(user) => lock_user_shared(&mut tx, user).await?,
            None => None,
        };
        // Locking the old row next: a concurrent rotation of the same record waits here and
        // then finds nothing, so exactly one successor is created; a concurrent save or role
        // change is waited for, so its version is the one compared.
        let found: Option<(i64, i64, i64, Option<i64>)> = sqlx::query_as(sql::ROTATE_READ)
            .bind(&old.as_bytes()[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let found = found.map(|(v, e, authorized, c)| (v, e, is_current(authorized, c)));
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
        if plan::is_stale(new, changed) {
            // Dropping `tx` rolls back: the old record is back, nothing changed.
            return Err(StoreError::AuthorizationChanged);
        }
        match bind_record(sqlx::query(sql::CREATE), new)
            .execute(&mut *tx)
            .await
        {
            Ok(_) => {}
            // Dropping `tx` rolls back: the old record is back, nothing changed.
            Err(e) if is_duplicate(&e) => return Err(StoreError::Collision),
            Err(e) => return Err(map_err(e)),
        }
        tx.commit().await.map_err(map_err)?;
        Ok(RotateOutcome::Rotated)
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

    pub(crate) async fn delete_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let batch = u64::try_from(limit).unwrap_or(u64::MAX);
        self.bounded(async {
            let done = sqlx::query(sql::DELETE_EXPIRED)
                .bind(to_db(now))
                .bind(batch)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            // Then the users' authorization changes nothing needs any more (at most a batch;
            // not counted: the answer is about sessions).
            sqlx::query(sql::FORGET_AUTHZ)
                .bind(to_db(now - plan::AUTHZ_RETENTION))
                .bind(batch)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
        .await
    }
}

/// Whether an insert failed on the primary key: the key exists.
fn is_duplicate(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Binds a record's columns in the order of [`sql::CREATE`].
fn bind_record<'q>(
    query: Query<'q, MySql, MySqlArguments>,
    r: &'q SessionRecord,
) -> Query<'q, MySql, MySqlArguments> {
    let (last_seen, idle, absolute) = (
        to_db(r.last_seen_at),
        secs(r.idle_timeout),
        to_db(r.absolute_expires_at),
    );
    query
        .bind(&r.key.as_bytes()[..])
        .bind(&r.handle.as_bytes()[..])
        .bind(r.user.as_ref().map(|u| user_hash(u).to_vec()))
        .bind(r.user.as_ref().map(|u| u.as_str().as_bytes()))
        .bind(roles_to_db(&r.roles).into_bytes())
        .bind(r.data.as_json().as_bytes())
        .bind(to_db(r.created_at))
        .bind(last_seen)
        .bind(r.authenticated_at.map(to_db))
        .bind(idle)
        .bind(absolute)
        .bind(expires_at(last_seen, idle, absolute))
        .bind(r.user_agent.as_deref().map(str::as_bytes))
        .bind(version_to_db(r.version))
        .bind(to_db(r.authorized_at))
        .bind(r.persistent)
}

/// Whether a row authorized at `authorized_at` is current given its user's change time.
fn is_current(authorized_at: i64, changed_at: Option<i64>) -> bool {
    changed_at.is_none_or(|c| authorized_at >= c)
}

/// Runs `attempt` again (up to [`DEADLOCK_RETRIES`] times) when InnoDB rolled it back as a
/// deadlock's victim.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if is_deadlock(&e) && tries < DEADLOCK_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// The change time of `user`, read with a shared lock until `tx` ends ([`sql::LOCK_USER_SHARED`]).
async fn lock_user_shared(
    tx: &mut sqlx::Transaction<'_, MySql>,
    user: &UserId,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(sql::LOCK_USER_SHARED)
        .bind(&user_hash(user)[..])
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)
}

/// The first steps of a per-user change, inside its transaction: the user's row locked
/// exclusively (created if need be), its previous change time (0 if none) and the new one,
/// `max(previous, now)`, recorded.
async fn record_change(
    tx: &mut sqlx::Transaction<'_, MySql>,
    user: &UserId,
    now: Timestamp,
) -> Result<(i64, i64), StoreError> {
    let hash = user_hash(user);
    sqlx::query(sql::LOCK_USER)
        .bind(&hash[..])
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let before: i64 = sqlx::query_scalar(sql::USER_CHANGED_AT_LOCKED)
        .bind(&hash[..])
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
    let changed = before.max(to_db(now));
    sqlx::query(sql::SET_USER_CHANGED_AT)
        .bind(changed)
        .bind(&hash[..])
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok((before, changed))
}
