//! `PostgresStore`: sessionward's session store in PostgreSQL, on [sqlx](https://docs.rs/sqlx).
//!
//! For several app processes or hosts sharing one set of sessions: logout and revocation take
//! effect everywhere at once, and a read-only request costs one statement.
//!
//! - **Hashed keys.** Rows are keyed by the SHA-256 of the session token (`bytea`); the token
//!   never reaches the database, so a leaked table or backup cannot be replayed (SEC-29).
//! - **Atomic operations.** Create is `INSERT .. ON CONFLICT DO NOTHING` checked by its row
//!   count; a save applies the request's data-key changes in SQL on top of the current row, so
//!   concurrent requests that change different keys all keep their changes, checks the version
//!   only for structural changes (roles, lifetime), and never recreates a row that is gone
//!   (SEC-31); a rotation is one transaction, which locks the old row first and, given an
//!   expected version, replaces it only at that version (`RotateOutcome::Conflict` otherwise).
//! - **Data limit.** A save with
//!   [`ChangeSet::data_limit`](sessionward_core::ChangeSet::data_limit) measures the data it
//!   would leave in the same statement, on the locked newest row, as `octet_length` of its
//!   jsonb text (what the store returns; about two bytes per key more than compact JSON), and
//!   past the limit fails with [`DataError::TooLarge`](sessionward_core::DataError::TooLarge)
//!   and writes nothing, so concurrent saves of different keys cannot grow a session past it
//!   together.
//! - **Indexed.** Key (primary key), user and sweep time each have an index; `load` filters
//!   `expires_at > now` on the primary-key row and the sweeper works in batches through the
//!   sweep-time index (SEC-23). `expires_at` itself is not indexed, so a touch or a data save
//!   changes no indexed column and PostgreSQL updates the row in place (HOT).
//! - **Bind parameters only**; every statement is static text (SEC-32).
//! - **Bounded.** Every operation fails with a typed [`StoreError`] within its
//!   [operation timeout](PostgresStoreBuilder::operation_timeout) when the server is gone.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use sessionward_postgres::PostgresStore;
//! use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The application's pool, with bounded waits: a dead server is an error, not a hang.
//! let options: PgConnectOptions = std::env::var("DATABASE_URL")?.parse()?;
//! let pool = PgPoolOptions::new()
//!     .max_connections(10)
//!     .acquire_timeout(Duration::from_secs(3))
//!     .connect_lazy_with(options.options([("statement_timeout", "5s")]));
//!
//! // The store, its schema (safe to run from every instance at start-up), and a background
//! // sweeper that deletes expired rows every 60 s until the store is dropped.
//! let store = PostgresStore::new(pool);
//! store.migrate().await?;
//!
//! // Or tuned:
//! # let pool = store.pool().clone();
//! let tuned = PostgresStore::builder(pool)
//!     .operation_timeout(Duration::from_secs(2))
//!     .sweep(sessionward_postgres::SweepConfig::every(Duration::from_secs(300)))
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
//! The table, what each column holds, how big rows get and how to size the pool and the sweeper
//! are described in `docs/stores.md` of the repository, which also shows how to write a store
//! of your own against the conformance suite.
#![forbid(unsafe_code)]

mod builder;
#[cfg(test)]
mod plan_tests;
mod row;
mod sql;
mod store;

pub use builder::PostgresStoreBuilder;
pub use sessionward_core::StoreError;
pub use sessionward_core::{SweepConfig, SweeperStatus};
pub use store::{MIGRATIONS_TABLE, PostgresStore};
