//! `SqliteStore`: sessionward's session store in SQLite, on [sqlx](https://docs.rs/sqlx).
//!
//! Persistent sessions with no database server: sessions survive a restart of the app, kept in
//! one file beside it. For one host (several processes on it may share the file); for a fleet,
//! use the PostgreSQL, MySQL or Redis store.
//!
//! - **Hashed keys.** Rows are keyed by the SHA-256 of the session token (a 32-byte `BLOB`);
//!   the token never reaches the database, so a leaked file or backup cannot be replayed
//!   (SEC-29).
//! - **Atomic operations, on SQLite's single writer.** Create is `INSERT .. ON CONFLICT DO
//!   NOTHING` checked by its row count. A save and a rotation each run in one
//!   `BEGIN IMMEDIATE` transaction, which takes the database's write lock before it reads, so
//!   the row it decides on is the row it writes: data-key changes merge onto the current data
//!   (in Rust, with the same merge as every other store), the version is checked only for
//!   structural changes, a row that is gone is never recreated (SEC-31), and a rotation
//!   replaces the old row only at the expected version.
//! - **Data limit.** A save with
//!   [`ChangeSet::data_limit`](sessionward_core::ChangeSet::data_limit) measures the compact
//!   JSON it would leave, inside the transaction, and past the limit fails with
//!   [`DataError::TooLarge`](sessionward_core::DataError::TooLarge) and writes nothing.
//! - **Fails closed, never hangs.** WAL mode lets reads run beside the writer; a write that
//!   finds the lock held waits at most the busy timeout (5 s by default), then fails with
//!   [`StoreError::Timeout`], which the session layer answers with a 503. Every operation is
//!   also bounded by the [operation timeout](SqliteStoreBuilder::operation_timeout).
//! - **Indexed.** Key (primary key), user and expiry each have an index; `load` filters
//!   `expires_at > now` and the sweeper deletes in batches through the expiry index (SEC-23).
//! - **Bind parameters only**; every statement is static text (SEC-32).
//!
//! # Quick start
//!
//! ```no_run
//! use sessionward_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A file (created if missing, WAL mode), migrated, with a sweeper every 60 s.
//! let store = SqliteStore::open("sqlite://sessions.db").await?;
//!
//! // Or in memory (one connection that lives as long as the store), e.g. for tests:
//! let scratch = SqliteStore::open("sqlite::memory:").await?;
//!
//! // Or on a pool of your own, tuned:
//! use std::time::Duration;
//! use sqlx::sqlite::SqlitePoolOptions;
//! let options = SqliteStore::connect_options("sqlite://sessions.db")?
//!     .busy_timeout(Duration::from_secs(2));
//! let pool = SqlitePoolOptions::new().max_connections(8).connect_lazy_with(options);
//! let tuned = SqliteStore::builder(pool)
//!     .operation_timeout(Duration::from_secs(5))
//!     .sweep(sessionward_sqlite::SweepConfig::every(Duration::from_secs(300)))
//!     .build();
//! tuned.migrate().await?;
//! # let _ = (store, scratch);
//! # Ok(())
//! # }
//! ```
//!
//! Hand the store to the session layer as an `Arc<dyn SessionStore>`.
//!
//! # Schema, sizing and durability
//!
//! The table, the statements, what a crash can lose and how big the file gets are described
//! in `docs/stores.md` of the repository.
#![forbid(unsafe_code)]

mod builder;
#[cfg(test)]
mod plan_tests;
use sessionward_core::row_plan as plan;
mod row;
mod sql;
mod store;

pub use builder::SqliteStoreBuilder;
pub use sessionward_core::StoreError;
pub use sessionward_core::{SweepConfig, SweeperStatus};
pub use store::{DEFAULT_BUSY_TIMEOUT, MIGRATIONS_TABLE, SqliteStore};
