//! `MemoryStore`: sessionward's embedded session store, for one process.
//!
//! - **No global lock on the hot path.** Records live in 64 shards chosen by the key (a
//!   SHA-256 digest, so the shards fill evenly); a load, save or touch locks one shard.
//! - **A per-user index**, so "list my sessions", "sign out everywhere" and role changes cost
//!   what the user has, not what the store has.
//! - **An expiry index**, so [`delete_expired`](sessionward_core::SessionStore::delete_expired) costs what it
//!   deletes, and a **background sweeper** that calls it (every 60 s by default) and stops when
//!   the store is dropped. The sweep is incremental: 64 records per call, yielding to the runtime
//!   between calls, a shard's lock held for at most 64 expiry filings at a time, so a sweep of
//!   1,000,000 expired sessions does not stall requests (under full load on one core, the p99
//!   of signed-in reads during it was 1.14x the p99 without it: the benchmark harness's `sweep`
//!   workload, in `docs/performance.md`).
//! - **Two budgets.** Anonymous sessions are bounded by default
//!   ([`MemoryStore::DEFAULT_MAX_ANONYMOUS_SESSIONS`]): past the bound, a new one evicts the
//!   anonymous session that expires soonest in its shard (the least recently used, with one
//!   anonymous idle timeout), and nothing is refused, so a flood of them can never refuse a
//!   sign-in. Signed-in sessions have optional bounds: in all (past it, a sign-in fails with
//!   [`StoreError::CapacityExceeded`](sessionward_core::StoreError::CapacityExceeded), which the
//!   layer answers with 503) and per user (evict the oldest, or refuse).
//! - **Authorization epochs** (see the store contract): each user's last authorization change
//!   is kept beside the per-user index, under the same lock as the sessions it governs.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use sessionward_memory::{MemoryStore, PerUserLimit, SweepConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The default anonymous budget, no bound on signed-in sessions, swept every 60 s:
//! let store = MemoryStore::new();
//!
//! // Bounded: at most 100,000 signed-in sessions, 5 per user (the oldest is signed out), and
//! // 20,000 anonymous ones.
//! let bounded = MemoryStore::builder()
//!     .max_sessions(100_000)
//!     .max_anonymous_sessions(20_000)
//!     .max_sessions_per_user(5, PerUserLimit::EvictOldest)
//!     .sweep(SweepConfig::every(Duration::from_secs(30)))
//!     .build();
//! # let _ = (store, bounded);
//! # }
//! ```
//!
//! # Memory
//!
//! Measured on the development machine (x86_64, glibc malloc, Rust 1.95) with 1,000,000
//! sessions, each with a two-key payload (`{"cart":["book-17"],"theme":"dark"}`, 35 bytes of
//! JSON), by `cargo run --release -p sessionward-memory --example footprint -- 1000000`
//! (`ANON=1` and `NOUA=1` select the other rows):
//!
//! | sessions | bytes per session | payload + user agent text | overhead |
//! | --- | --- | --- | --- |
//! | signed in (4 per user), 42-byte user agent | 267 | 77 | 190 |
//! | signed in (4 per user), no user agent | 267 | 35 | 232 |
//! | anonymous, no user agent | 248 | 35 | 213 |
//!
//! Resident memory of the whole process at 1,000,000 signed-in sessions: about 258 MiB. With
//! one user per session, a role list (each session with its own allocation of it, as a
//! sign-in brings one) and a one-key payload (the benchmark harness's
//! `cargo run --release -p sessionward-bench -- memory --impl sessionward --count 1000000`):
//! 253 bytes per session.
//!
//! Where the bytes go, per signed-in session at 1,000,000: the entry, 128 bytes (a 144-byte
//! glibc chunk), with a user id of up to 23 bytes inside it (a longer one is one allocation
//! shared with the user's other sessions); the data text, one small allocation (32 to 48 bytes
//! for a short one); and about 59 bytes of hash tables (the shard table's 16-byte slot, which
//! keeps the key's fragment beside the entry's address so that probing and growing the table
//! never read the entries, and the per-user index's 8-byte pair, each at the 48% fill a hash
//! table can have just past a doubling, and the expiry index's 4-byte key fragment). Times are 32-bit seconds (until
//! 2106); the indexes hold 4-byte key fragments and 32-bit user hash fragments rather than
//! keys and user ids; and the roles, user agent, idle timeout and persistence choice, which
//! most sessions share with many others, are kept once per store (they cost nothing per
//! session when they repeat, as they do: a few role sets per application, a few browsers).
//!
//! The default anonymous budget, 100,000 sessions, measured the same way (`ANON=1 ... --
//! 100000`): 25.2 MiB resident, with the 42-byte user agent.
//!
//! "Overhead" is everything but the text the application and the client supplied: the record,
//! the hash tables, the expiry and per-user indexes and the allocator's rounding. The figures
//! move with the allocator and with the hash tables' fill (they double in size), so the example
//! prints them for any count.
#![forbid(unsafe_code)]

mod store;

pub use sessionward_core::{SweepConfig, SweeperStatus};
pub use store::{MemoryStore, MemoryStoreBuilder, PerUserLimit};
