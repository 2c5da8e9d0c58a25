//! Test support: the server at `DATABASE_URL` with a fresh schema per store, and throwaway
//! PostgreSQL clusters started and stopped by the tests themselves.
#![allow(dead_code, unreachable_pub)] // Each test file uses its own part of this module.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sessionward_postgres::{PostgresStore, SweepConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgPool};

use sessionward_conformance::services::{require_env, skip};

/// `DATABASE_URL` (e.g. postgres://postgres@127.0.0.1:5432/test), or a skip.
pub fn database_url() -> Option<String> {
    require_env("postgres", "DATABASE_URL")
}

/// A name unique to this process and call, safe as an unquoted identifier.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{prefix}_{secs}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for `url` with bounded waits: the server must answer a statement within `stmt`.
pub fn connect_options(url: &str, stmt: &str) -> PgConnectOptions {
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL parses");
    options
        .options([("statement_timeout", stmt)])
        .disable_statement_logging()
}

/// A small pool with bounded waits.
pub fn pool(options: PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// Creates the database named in `url` if it does not exist (a fresh CI machine has only
/// `postgres`), connecting to the `postgres` database to do so.
pub async fn ensure_database(url: &str) {
    let options = connect_options(url, "10s");
    let Some(name) = options.get_database().map(str::to_owned) else {
        return;
    };
    match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return;
        }
        Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("3D000") => {}
        Ok(Err(e)) => panic!("cannot connect to DATABASE_URL: {e}"),
        Err(_) => panic!("connecting to DATABASE_URL timed out"),
    }
    assert!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "refusing to create a database named {name:?}"
    );
    let mut admin = tokio::time::timeout(
        Duration::from_secs(10),
        options.clone().database("postgres").connect(),
    )
    .await
    .expect("connect to the postgres database in time")
    .expect("connect to the postgres database");
    let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await;
    if let Err(e) = created {
        // Another test created it first.
        let duplicate =
            matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P04"));
        assert!(duplicate, "CREATE DATABASE {name}: {e}");
    }
    let _ = admin.close().await;
}

/// The server at `DATABASE_URL` with a fresh schema per store; drops its schemas when dropped.
pub struct TestDb {
    url: String,
    admin: PgPool,
    prefix: String,
}

impl TestDb {
    /// Connects, or skips when `DATABASE_URL` is unset.
    pub async fn connect(prefix: &str) -> Option<Self> {
        let url = database_url()?;
        ensure_database(&url).await;
        let admin = pool(connect_options(&url, "30s"), 2);
        let db = Self {
            url,
            admin,
            prefix: unique_name(prefix),
        };
        db.drop_stale_schemas().await;
        Some(db)
    }

    /// The administrative pool (default `search_path`).
    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    /// A fresh, empty schema and a pool whose `search_path` names it.
    pub async fn schema_pool(&self, max_connections: u32) -> (String, PgPool) {
        let schema = unique_name(&self.prefix);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&self.admin)
            .await
            .expect("create schema");
        let options = connect_options(&self.url, "30s").options([("search_path", &schema)]);
        (schema, pool(options, max_connections))
    }

    /// A migrated store without a sweeper in a fresh schema.
    pub async fn store(&self) -> (String, PostgresStore) {
        let (schema, pool) = self.schema_pool(5).await;
        (schema, migrated_store(pool).await)
    }

    /// Drops this run's schemas.
    pub async fn cleanup(&self) {
        self.drop_schemas_like(&format!("{}\\_%", self.prefix))
            .await;
    }

    /// Drops schemas that earlier, interrupted runs of any test left behind (older than an
    /// hour, judged by the time in their name).
    async fn drop_stale_schemas(&self) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'swt\\_%'",
        )
        .fetch_all(&self.admin)
        .await
        .expect("list schemas");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for name in names {
            let secs = name
                .split('_')
                .find_map(|part| part.parse::<u64>().ok().filter(|s| *s > 1_000_000_000));
            if secs.is_some_and(|s| s + 3600 < now) {
                self.drop_schema(&name).await;
            }
        }
    }

    async fn drop_schemas_like(&self, pattern: &str) {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
                .bind(pattern)
                .fetch_all(&self.admin)
                .await
                .expect("list schemas");
        for name in names {
            self.drop_schema(&name).await;
        }
    }

    async fn drop_schema(&self, name: &str) {
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE"
        )))
        .execute(&self.admin)
        .await;
    }
}

/// A signed-in or anonymous record created at `at` (30 min idle, 12 h absolute).
#[allow(unused_imports)] // Each test file uses its own part of this module.
pub use sessionward_conformance::fixtures::record;

/// Runs `cmd` to completion within `limit`, killing it past that. Returns whether it
/// succeeded.
fn run(cmd: &mut Command, limit: Duration) -> bool {
    let mut child = match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("cannot run {cmd:?}: {e}");
            return false;
        }
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("{cmd:?} did not finish within {limit:?}");
                return false;
            }
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: `SESSIONWARD_PG_BIN`, or the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SESSIONWARD_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A throwaway PostgreSQL cluster in a temporary directory on a free port of 127.0.0.1, with
/// `pg_stat_statements` loaded. Stopped and deleted when dropped.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the server as the `postgres` OS user (we are root, and initdb refuses root).
    as_postgres: bool,
}

impl Cluster {
    /// Creates and starts a cluster, or skips when the PostgreSQL binaries are missing.
    pub fn start_new() -> Option<Self> {
        let Some(bin) = pg_bin() else {
            return skip(
                "cluster",
                "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql",
            );
        };
        let as_postgres = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0) == 0;
        // The postgres user must reach the directory: under root, use /tmp whatever TMPDIR says.
        let base = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(unique_name("sw_pg_cluster"));
        fs::create_dir_all(&dir).expect("create the cluster directory");
        let mut cluster = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            assert!(
                run(
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&cluster.dir),
                    Duration::from_secs(10)
                ),
                "chown of {} to postgres failed",
                cluster.dir.display()
            );
        }
        let data = cluster.data();
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        assert!(
            run(&mut initdb, Duration::from_secs(120)),
            "initdb failed in {}",
            cluster.dir.display()
        );
        // The port may have been taken between choosing and starting; try a few.
        for _ in 0..3 {
            if cluster.try_start() {
                return Some(cluster);
            }
            cluster.port = free_port();
        }
        panic!("the throwaway cluster did not start:\n{}", cluster.log());
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    fn try_start(&self) -> bool {
        let server_options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(server_options)
            .arg("start");
        run(&mut start, Duration::from_secs(90))
    }

    /// Starts the stopped cluster again on the same port and data directory.
    pub fn start(&self) {
        assert!(
            self.try_start(),
            "the throwaway cluster did not restart:\n{}",
            self.log()
        );
    }

    /// Stops the cluster at once (`immediate`: like a crash, no checkpoint).
    pub fn stop(&self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        assert!(
            run(&mut stop, Duration::from_secs(45)),
            "pg_ctl stop failed"
        );
    }

    /// The port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connect options for the `postgres` database of this cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        connect_options(
            &format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            "2s",
        )
    }

    /// The end of the server log, for failure messages.
    pub fn log(&self) -> String {
        let text = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_owned()
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        // Already stopped is fine; a failure here must not hide the test's own panic.
        let _ = run(&mut stop, Duration::from_secs(45));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A migrated store on `pool`, without a sweeper, with a generous operation timeout.
pub async fn migrated_store(pool: PgPool) -> PostgresStore {
    let store = PostgresStore::builder(pool)
        .operation_timeout(Duration::from_secs(30))
        .sweep(SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    store
}
