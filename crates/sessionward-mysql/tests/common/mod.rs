//! Test support: the server at `MYSQL_URL` with a fresh database per store, and a throwaway
//! MariaDB server started and stopped (by its process id) by the tests themselves.
#![allow(dead_code, unreachable_pub)] // Each test file uses its own part of this module.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sessionward_conformance::services::{require_env, skip};
use sessionward_mysql::{MySqlStore, SweepConfig};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions as _, MySqlPool};

/// `MYSQL_URL` (e.g. mysql://root@127.0.0.1:3306/test), or a skip.
pub fn mysql_url() -> Option<String> {
    require_env("mysql", "MYSQL_URL")
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

/// A small pool with bounded waits.
pub fn pool(options: MySqlConnectOptions, max: u32) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.disable_statement_logging())
}

/// The server at `MYSQL_URL` with a fresh database per store; drops its databases on cleanup.
pub struct TestDb {
    options: MySqlConnectOptions,
    admin: MySqlPool,
    prefix: String,
}

impl TestDb {
    /// Connects, or skips when `MYSQL_URL` is unset.
    pub async fn connect(prefix: &str) -> Option<Self> {
        let url = mysql_url()?;
        let options: MySqlConnectOptions = url.parse().expect("MYSQL_URL parses");
        let admin = pool(options.clone(), 2);
        Some(Self {
            options,
            admin,
            prefix: unique_name(prefix),
        })
    }

    /// The administrative pool (the database of `MYSQL_URL`).
    pub fn admin(&self) -> &MySqlPool {
        &self.admin
    }

    /// A fresh, empty database and a pool on it.
    pub async fn database_pool(&self, max_connections: u32) -> (String, MySqlPool) {
        let name = unique_name(&self.prefix);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.admin)
            .await
            .expect("create database");
        let options = self.options.clone().database(&name);
        (name, pool(options, max_connections))
    }

    /// A migrated store without a sweeper in a fresh database.
    pub async fn store(&self) -> (String, MySqlStore) {
        let (name, pool) = self.database_pool(5).await;
        let store = MySqlStore::builder(pool)
            .operation_timeout(Duration::from_secs(30))
            .sweep(SweepConfig::disabled())
            .build();
        store.migrate().await.expect("migrate");
        (name, store)
    }

    /// Drops this run's databases.
    pub async fn cleanup(&self) {
        let like = format!("{}\\_%", self.prefix);
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
             WHERE schema_name LIKE ?",
        )
        .bind(like)
        .fetch_all(&self.admin)
        .await
        .expect("list databases");
        for name in names {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&self.admin)
            .await
            .expect("drop database");
        }
    }
}

/// A MariaDB server of the test's own, in a temporary directory on a free port, started with
/// `mariadbd` and stopped by its process id (never by name): the machine's server is left
/// alone.
pub struct OwnServer {
    child: Option<Child>,
    /// `mysql://root@127.0.0.1:PORT/test`
    pub url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl OwnServer {
    /// Installs a data directory and starts `mariadbd` on it, waiting (at most 60 s) until it
    /// answers; `None` (a skip) where MariaDB is not installed.
    pub async fn start(test: &str) -> Option<Self> {
        if !have("mariadb-install-db") || !have("mariadbd") {
            return skip(test, "mariadb-install-db and mariadbd are not installed");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let status = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user_args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mariadb-install-db");
        assert!(status.success(), "mariadb-install-db failed");
        let port = free_port();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("err.log").display()
            ))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-grant-tables"])
            .args(["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"])
            .args(user_args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = Self {
            child: Some(child),
            url: format!("mysql://root@127.0.0.1:{port}/test"),
            _dir: dir,
        };
        server.wait_ready().await;
        Some(server)
    }

    async fn wait_ready(&self) {
        let base = self.url.trim_end_matches("/test");
        let options: MySqlConnectOptions = base.parse().expect("url");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Ok(mut conn)) =
                tokio::time::timeout(Duration::from_secs(2), options.connect()).await
            {
                sqlx::query("CREATE DATABASE IF NOT EXISTS test")
                    .execute(&mut conn)
                    .await
                    .expect("create the test database");
                return;
            }
            assert!(Instant::now() < deadline, "mariadbd did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server (SIGKILL, by its process id) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `--user=root` when running as root (mariadbd refuses root otherwise).
fn user_args() -> Vec<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        vec!["--user=root".to_owned()]
    } else {
        Vec::new()
    }
}
