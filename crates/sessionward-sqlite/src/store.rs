use std::fmt;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{
    ChangeSet, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey, SessionRecord,
    SessionStore, StoreError, Sweeper, SweeperStatus, Timestamp, UserId,
};
use sqlx::SqlitePool;
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::builder::SqliteStoreBuilder;
use crate::plan::{self, Current, Take, expires_at, secs, to_db, version_to_db};
use crate::row::{map_err, record_from_row, roles_to_db};
use crate::sql;

mod session_store;

/// The table that records which of this crate's migrations ran. Separate from
/// `_sqlx_migrations`, so the application's own sqlx migrations and ours never see each other's.
pub const MIGRATIONS_TABLE: &str = "_sessionward_migrations";

/// Default number of rows one sweeper statement deletes.
pub(crate) const DEFAULT_SWEEP_BATCH: usize = 1_000;

/// Default busy timeout of [`SqliteStore::connect_options`]: how long a write waits for
/// another connection's write lock before it fails with [`StoreError::Timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of the pool [`SqliteStore::open`] makes for a database file (readers run in
/// parallel in WAL mode; writers take turns on SQLite's one write lock).
const FILE_POOL_SIZE: u32 = 4;

/// A [`SessionStore`] in SQLite, on an [`SqlitePool`]: persistent sessions with no database
/// server.
///
/// One table (`sessionward_sessions`, created by [`migrate`](Self::migrate)) keyed by the
/// SHA-256 of the token; the token never reaches the database. A load is one statement; a save
/// and a rotation are one `BEGIN IMMEDIATE` transaction each, which holds SQLite's write lock
/// from its read to its write, so what it read is what it changes; so are the per-user
/// changes, which record the user's authorization change (`sessionward_user_authz`) with the
/// change. A load also reads that change time, in the same statement. Expired rows are never
/// returned and are deleted by [`delete_expired`](SessionStore::delete_expired), which the
/// optional background sweeper calls (on by default, every 60 s, stopping when the store is
/// dropped).
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
    /// Dropped with the last clone of the store, which ends the sweeper at once.
    pub(crate) sweeper: Arc<Sweeper>,
}

pub(crate) struct Inner {
    pub(crate) pool: SqlitePool,
    pub(crate) operation_timeout: Duration,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool_size", &self.inner.pool.size())
            .field("operation_timeout", &self.inner.operation_timeout)
            .field("sweeper", &self.sweeper)
            .finish_non_exhaustive()
    }
}

/// Whether `url` names an in-memory database.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl SqliteStore {
    /// A store on `pool` with the defaults: operations bounded to 10 s, and a background
    /// sweeper every 60 s on the system clock if a Tokio runtime is running.
    ///
    /// Call [`migrate`](Self::migrate) once at start-up before using it. Give the pool's
    /// connections the settings of [`connect_options`](Self::connect_options) (WAL, a busy
    /// timeout); an in-memory database needs a pool of one connection that never closes (the
    /// database lives as long as its last connection).
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        Self::builder(pool).build()
    }

    /// A builder for the operation timeout and the sweeper.
    #[must_use]
    pub fn builder(pool: SqlitePool) -> SqliteStoreBuilder {
        SqliteStoreBuilder::new(pool)
    }

    /// The connection settings the store is made for, for `url`: `sqlite::memory:`, a
    /// `sqlite://PATH` or `sqlite:PATH` URL (with sqlx's query parameters), or a plain file
    /// path. The file is created if missing and put in WAL mode (readers never wait for the
    /// writer), `synchronous = FULL` (a committed logout survives a power cut), and a write
    /// waits at most [`DEFAULT_BUSY_TIMEOUT`] for another connection's write lock before it
    /// fails with [`StoreError::Timeout`] (change it with `.busy_timeout(..)`).
    ///
    /// ```
    /// use sessionward_sqlite::SqliteStore;
    /// let options = SqliteStore::connect_options("sqlite://sessions.db")?;
    /// assert!(options.get_filename().ends_with("sessions.db"));
    /// # Ok::<(), sessionward_sqlite::StoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] if `url` does not parse.
    pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(StoreError::backend)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let options = options
            .create_if_missing(true)
            .busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        Ok(if is_memory(url) {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        })
    }

    /// Opens (creating it if missing) the database at `url` (see
    /// [`connect_options`](Self::connect_options)), migrates it and returns a store on it with
    /// the defaults. An in-memory database gets a pool of one connection that lives as long as
    /// the store; a file gets a pool of four.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sessionward_sqlite::StoreError> {
    /// let store = sessionward_sqlite::SqliteStore::open("sqlite://sessions.db").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the database cannot be opened or migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = Self::connect_options(url)?;
        let store = Self::new(Self::pool_for(options, is_memory(url)));
        store.migrate().await?;
        Ok(store)
    }

    /// The pool [`open`](Self::open) makes: bounded waits for a connection, and for an
    /// in-memory database one connection that is never closed.
    pub(crate) fn pool_for(options: SqliteConnectOptions, memory: bool) -> SqlitePool {
        let pool = SqlitePoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let pool = if memory {
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool.max_connections(FILE_POOL_SIZE)
        };
        pool.connect_lazy_with(options)
    }

    /// Creates or upgrades the session table and its indexes (the SQL in this crate's
    /// `migrations/`, embedded with `sqlx::migrate!`). Applied migrations are recorded in
    /// [`MIGRATIONS_TABLE`]; running it again (at every start-up) does nothing.
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
    pub fn pool(&self) -> &SqlitePool {
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
}

impl Inner {
    /// A write transaction, begun `IMMEDIATE`: it takes SQLite's write lock at once, so that
    /// what it reads cannot change before it writes.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with(sql::BEGIN_IMMEDIATE)
            .await
            .map_err(map_err)
    }

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
        let batch = i64::try_from(limit).unwrap_or(i64::MAX);
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

/// Binds a record's columns in the order of [`sql::CREATE`].
fn bind_record<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    r: &'q SessionRecord,
) -> Query<'q, Sqlite, SqliteArguments> {
    let (last_seen, idle, absolute) = (
        to_db(r.last_seen_at),
        secs(r.idle_timeout),
        to_db(r.absolute_expires_at),
    );
    query
        .bind(&r.key.as_bytes()[..])
        .bind(&r.handle.as_bytes()[..])
        .bind(r.user.as_ref().map(UserId::as_str))
        .bind(roles_to_db(&r.roles))
        .bind(r.data.as_json())
        .bind(to_db(r.created_at))
        .bind(last_seen)
        .bind(r.authenticated_at.map(to_db))
        .bind(idle)
        .bind(absolute)
        .bind(expires_at(last_seen, idle, absolute))
        .bind(r.user_agent.as_deref())
        .bind(version_to_db(r.version))
        .bind(to_db(r.authorized_at))
        .bind(r.persistent)
}

/// The stored change time of `user`, read on `executor`.
async fn changed_at<'c, E>(executor: E, user: &UserId) -> Result<Option<i64>, StoreError>
where
    E: sqlx::SqliteExecutor<'c>,
{
    sqlx::query_scalar(sql::USER_CHANGED_AT)
        .bind(user.as_str())
        .fetch_optional(executor)
        .await
        .map_err(map_err)
}

/// The first steps of a per-user change, inside its `BEGIN IMMEDIATE` transaction: the user's
/// previous change time (0 if none) and the new one, `max(previous, now)`, recorded.
async fn record_change(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    user: &UserId,
    now: Timestamp,
) -> Result<(i64, i64), StoreError> {
    let before = changed_at(&mut **tx, user).await?.unwrap_or(0);
    let changed = before.max(to_db(now));
    sqlx::query(sql::SET_USER_CHANGED_AT)
        .bind(user.as_str())
        .bind(changed)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok((before, changed))
}
