//! `RedisStore`: sessionward's session store for fleets of app servers, on Redis 7 (or Redis
//! Cluster).
//!
//! - **One round trip per read.** A session is one Redis hash; `load` is a single `HGETALL`,
//!   and expiry is checked against the caller's clock in the process.
//! - **Atomic writes.** Every operation that writes is one Lua script (sent as `EVALSHA`, one
//!   round trip): create-if-absent, save with the version check (which never recreates a
//!   record that is gone), touch, rotate, delete, and the per-user operations.
//! - **Concurrent saves merge.** Data keys are hash fields, so saves of different keys all
//!   survive; values are kept as their JSON text, untouched by Lua (no number or empty-array
//!   surprises from a JSON round trip).
//! - **Checked inside the scripts.** A rotation given an expected version replaces the old
//!   record only at that version (`RotateOutcome::Conflict` otherwise). A save with
//!   [`ChangeSet::data_limit`](sessionward_core::ChangeSet::data_limit) computes the size of
//!   the JSON object text the data would load as (from a size the record keeps and the lengths
//!   of the keys the save changes, so it does not read the whole record) and past the limit
//!   fails with
//!   [`DataError::TooLarge`](sessionward_core::DataError::TooLarge), writing nothing, so
//!   concurrent saves of different keys cannot grow a session past it together.
//! - **Expiry three ways.** Every operation decides expiry by the `now` it is given; a Redis
//!   TTL (expiry − now + [slack](RedisStoreBuilder::ttl_slack)) removes a record Redis-side;
//!   and a sorted set of expiries makes
//!   [`delete_expired`](sessionward_core::SessionStore::delete_expired) cost what it deletes.
//!   A background sweeper calls it (every 60 s by default) to trim the indexes.
//! - **Keys from the SHA-256 key**, never the token; user ids appear in key names only as a
//!   digest.
//! - **Redis Cluster.** [`RedisStore::connect_cluster`] (and
//!   [`RedisStoreBuilder::connect_cluster`]) build the store in cluster mode, on redis-rs's
//!   async cluster client (follows `MOVED`/`ASK`, reconnects): records spread over 256 hash
//!   tags (their key's first byte), each user's index and authorization change time under a
//!   tag of their own, and the steps that span slots ordered write-then-check so that a
//!   sign-in racing a demotion or "sign out everywhere" never survives it. A load is still one
//!   `HGETALL` to one node. Failures are typed ([`ClusterError`]). `docs/redis.md` has the
//!   design. In single-node mode every key starts with the hash tag `{namespace}`, so one
//!   store's keys share a slot and every operation is one atomic script.
//! - **Fails fast.** Connection attempts and responses have timeouts and every operation has a
//!   deadline ([`timeout`](RedisStoreBuilder::timeout), 2 s by default): a Redis that is down
//!   or hung gives a [`StoreError`](sessionward_core::StoreError) (which the layer turns into a
//!   503), never a hang; the client reconnects by itself when Redis is back.
//!
//! # Quick start
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sessionward_core::SessionStore;
//! use sessionward_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Defaults: namespace "sessionward", 2 s timeouts, sweeper every 60 s.
//! let store: Arc<dyn SessionStore> = Arc::new(RedisStore::connect("redis://127.0.0.1:6379").await?);
//!
//! // Or configured, on a client you built (TLS, credentials, ...):
//! let client = sessionward_redis::redis::Client::open("redis://127.0.0.1:6379")?;
//! let shop = RedisStore::builder()
//!     .namespace("shop")
//!     .timeout(Duration::from_millis(500))
//!     .ttl_slack(Duration::from_secs(120))
//!     .connect_client(client)
//!     .await?;
//! # let _ = (store, shop);
//! # Ok(())
//! # }
//! ```
//!
//! # Figures
//!
//! With Redis 7.0 over loopback (`cargo run --release -p sessionward-redis --example redis_footprint
//! -- 100000`): a signed-in session with a two-key payload and a user agent takes about 824
//! bytes of Redis memory (an anonymous one about 500), and one request at a time takes about
//! 40 µs to create, 29 µs to load and 38 µs to save. `docs/stores.md (RedisStore section)` has the details.
//!
//! # Why redis-rs
//!
//! The store uses [redis-rs](https://docs.rs/redis) (the `redis` crate, re-exported as
//! [`redis`]) and its [`ConnectionManager`](redis::aio::ConnectionManager) rather than fred:
//!
//! - it is the most used Rust Redis client, maintained under the `redis-rs` organisation with
//!   regular releases;
//! - `ConnectionManager` is exactly what a session store needs: one multiplexed connection
//!   that is cheap to clone, reconnects by itself with a bounded, jittered backoff, and has
//!   connection and response timeouts;
//! - its `Script` type sends `EVALSHA` and loads the script only when Redis answers
//!   `NOSCRIPT` (after a restart), so a script costs one round trip;
//! - a small dependency tree with only the features used here (`tokio-comp`,
//!   `connection-manager`, `script`); no connection pool is needed on top of multiplexing.
//!
//! fred is a fine client too (pooling, cluster and sentinel built in), but it brings a larger
//! surface and its own runtime model for what this store needs. The cost of redis-rs 1.x is a
//! newer minimum Rust (1.88) for this crate.
//!
//! # Errors
//!
//! Refused or lost connections are [`StoreError::Backend`](sessionward_core::StoreError),
//! deadlines are [`StoreError::Timeout`](sessionward_core::StoreError), an undecodable record
//! is [`StoreError::Corrupt`](sessionward_core::StoreError). A write that timed out may or
//! may not have been applied (as with any networked store); the layer fails the request
//! closed either way.
#![forbid(unsafe_code)]

mod cluster;
mod codec;
mod connect;
mod scripts;
mod store;

pub use cluster::ClusterError;
pub use connect::RedisStoreBuilder;
pub use sessionward_core::{SweepConfig, SweeperStatus};
pub use store::RedisStore;

/// The Redis client this store is built on, re-exported so that a [`redis::Client`] or
/// [`redis::aio::ConnectionManager`] you hand in is of the same version.
pub use redis;
