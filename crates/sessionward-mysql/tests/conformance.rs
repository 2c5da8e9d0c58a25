//! The conformance suite against the MySQL or MariaDB server at `MYSQL_URL`, each case in a
//! fresh database of its own.

mod common;

use std::sync::Arc;

use sessionward_core::SessionStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(db) = common::TestDb::connect("swm_conf").await else {
        return;
    };
    let db = Arc::new(db);
    let factory_db = db.clone();
    sessionward_conformance::run_all(move || {
        let db = factory_db.clone();
        async move {
            let (_name, store) = db.store().await;
            Arc::new(store) as Arc<dyn SessionStore>
        }
    })
    .await;
    db.cleanup().await;
}
