//! The conformance suite on SQLite: every case on a fresh database file of its own (WAL mode,
//! a pool of several connections, so the races are real), and every case in memory.

use std::sync::Arc;
use std::time::Duration;

use sessionward_core::SessionStore;
use sessionward_sqlite::{SqliteStore, SweepConfig};
use sqlx::sqlite::SqlitePoolOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_files() {
    let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    sessionward_conformance::run_all(move || {
        let (dir, next) = (dir.clone(), next.clone());
        async move {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("case-{n}.db"));
            let options = SqliteStore::connect_options(&path.to_string_lossy())
                .expect("options")
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_lazy_with(options);
            let store = SqliteStore::builder(pool)
                .operation_timeout(Duration::from_secs(40))
                .sweep(SweepConfig::disabled())
                .build();
            store.migrate().await.expect("migrate");
            Arc::new(store) as Arc<dyn SessionStore>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    sessionward_conformance::run_all(|| async {
        let store = SqliteStore::open("sqlite::memory:").await.expect("open");
        Arc::new(store) as Arc<dyn SessionStore>
    })
    .await;
}
