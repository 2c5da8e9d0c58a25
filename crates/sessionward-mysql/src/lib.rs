//! `MySqlStore`: sessionward's session store in MySQL 8 or MariaDB, on
//! [sqlx](https://docs.rs/sqlx).
//!
//! For several app processes or hosts sharing one set of sessions on the database they
//! already run: logout and revocation take effect everywhere at once, and a read-only request
//! costs one statement.
//!
//! - **Hashed keys.** Rows are keyed by the SHA-256 of the session token (`BINARY(32)`); the
//!   token never reaches the database, so a leaked table or backup cannot be replayed (SEC-29).
//! - **Atomic operations without `RETURNING`.** Create is a plain `INSERT`: a duplicate key is
//!   `ER_DUP_ENTRY`, answered as a collision, never an overwrite. A save and a rotation are one
//!   InnoDB transaction each: `SELECT .. FOR UPDATE` locks the row (a concurrent writer is
//!   waited for, and its committed version is the one read), the store decides in Rust and
//!   writes the row by its primary key, then commits. Data-key changes merge onto the current
//!   data with the same merge as every other store (not `JSON_MERGE_PATCH`, which deletes keys
//!   set to `null`), the version is checked only for structural changes, a row that is gone is
//!   never recreated (SEC-31), and a rotation replaces the old row only at the expected
//!   version. A transaction InnoDB picks as a deadlock's victim is run again (three times at
//!   most).
//! - **Data limit.** A save with
//!   [`ChangeSet::data_limit`](sessionward_core::ChangeSet::data_limit) measures the compact
//!   JSON it would leave, on the locked row, and past the limit fails with
//!   [`DataError::TooLarge`](sessionward_core::DataError::TooLarge) and writes nothing.
//! - **Byte-exact.** Text is kept in binary columns, so no collation can make two user ids,
//!   roles or keys equal that are not.
//! - **Indexed.** Key (primary key), user (on a hash of the id) and expiry each have an index;
//!   `load` filters `expires_at > now` and the sweeper deletes in batches through the expiry
//!   index (SEC-23).
//! - **Bind parameters only**; every statement is static text (SEC-32).
//! - **Bounded.** Every operation fails with a typed [`StoreError`] within its
//!   [operation timeout](MySqlStoreBuilder::operation_timeout) when the server is gone, and a
//!   pool's acquire timeout sooner.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use sessionward_mysql::MySqlStore;
//! use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The application's pool, with bounded waits: a dead server is an error, not a hang.
//! let options: MySqlConnectOptions = std::env::var("MYSQL_URL")?.parse()?;
//! let pool = MySqlPoolOptions::new()
//!     .max_connections(10)
//!     .acquire_timeout(Duration::from_secs(3))
//!     .connect_lazy_with(options);
//!
//! // The store, its schema (safe to run from every instance at start-up), and a background
//! // sweeper that deletes expired rows every 60 s until the store is dropped.
//! let store = MySqlStore::new(pool);
//! store.migrate().await?;
//!
//! // Or tuned:
//! # let pool = store.pool().clone();
//! let tuned = MySqlStore::builder(pool)
//!     .operation_timeout(Duration::from_secs(2))
//!     .sweep(sessionward_mysql::SweepConfig::every(Duration::from_secs(300)))
//!     .build();
//! # let _ = tuned;
//! # Ok(())
//! # }
//! ```
//!
//! Hand the store to the session layer as an `Arc<dyn SessionStore>`.
//!
//! # Schema, sizing and cleanup
//!
//! The table, the statements, what a crash can lose and how big the table gets are described
//! in `docs/stores.md` of the repository.
#![forbid(unsafe_code)]

mod builder;
#[cfg(test)]
mod plan_tests;
use sessionward_core::row_plan as plan;
mod row;
mod sql;
mod store;

pub use builder::MySqlStoreBuilder;
pub use sessionward_core::StoreError;
pub use sessionward_core::{SweepConfig, SweeperStatus};
pub use store::{MIGRATIONS_TABLE, MySqlStore};
