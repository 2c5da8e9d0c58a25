//! The foundation of [sessionward](https://github.com/sessionward/sessionward): session
//! tokens, session records, injected clocks and the [`SessionStore`] contract. No tower and no
//! axum here, so a store can be written, tested and used on its own.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use sessionward_core::{Clock, SessionHandle, SessionRecord, SessionToken, SystemClock};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A new session: the client gets the token, the store gets the record keyed by its hash.
//! let token = SessionToken::generate()?;
//! let now = SystemClock.now();
//! let record = SessionRecord::new(
//!     token.key(),
//!     SessionHandle::generate()?,
//!     now,
//!     Duration::from_secs(30 * 60),      // idle timeout
//!     Duration::from_secs(12 * 60 * 60), // absolute timeout
//! );
//! assert!(record.is_live(now));
//!
//! // Later the client presents the token; parsing is strict and never touches a store.
//! let presented = token.expose();
//! let key = SessionToken::parse(&presented).map(|t| t.key());
//! assert_eq!(key, Some(record.key));
//! # Ok(())
//! # }
//! ```
//!
//! # Security properties
//!
//! - [`SessionToken`]: 256 bits from the OS CSPRNG, 43 characters of canonical unpadded
//!   base64url; `Debug` is redacted and there is no `Display` or serde (SEC-01, 02, 10).
//! - [`SessionKey`]: SHA-256 of the token, the only form stores see (SEC-29, 30).
//! - [`SessionRecord::expires_at`]: `min(last_seen + idle, absolute)` against an injected
//!   [`Clock`] (SEC-21, 22).
//! - [`SessionStore`]: create never overwrites, save never resurrects (SEC-31).
#![forbid(unsafe_code)]

mod clock;
mod conversions;
mod data;
mod error;
mod merge;
mod record;
pub mod row_plan;
mod store;
mod sweeper;
mod token;
mod user_id;

pub use clock::{Clock, SharedClock, SystemClock, TestClock};
pub use error::StoreError;
pub use record::{DataChanges, DataError, RoleSet, SessionData, SessionRecord, Timestamp, UserId};
pub use store::{ChangeSet, ImmediateStore, RotateOutcome, SaveOutcome, SessionStore};
pub use sweeper::{SweepConfig, Sweeper, SweeperStatus};
pub use token::{
    HANDLE_BYTES, HANDLE_LEN, RngError, SessionHandle, SessionKey, SessionToken, TOKEN_BYTES,
    TOKEN_LEN,
};

/// Re-exported so that stores and apps name the same `async_trait`.
pub use async_trait::async_trait;
