//! Store errors.

use std::error::Error as StdError;

use crate::record::DataError;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed. The layer turns every variant into a rejection: the request
/// never passes as if it had (or had no) session (fail closed, SEC-17).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create` found a record under the same key; nothing was overwritten.
    #[error("a session with this key already exists")]
    Collision,
    /// The store holds as many sessions as it is configured to.
    #[error("the session store is full ({limit} sessions)")]
    CapacityExceeded {
        /// The configured bound.
        limit: usize,
    },
    /// The user holds as many sessions as allowed and the policy is to refuse a new one.
    #[error("the user already has the maximum of {limit} sessions")]
    UserLimitReached {
        /// The configured bound.
        limit: usize,
    },
    /// `create` or `rotate` refused a signed-in record whose authorization predates its user's
    /// last authorization change (roles set, sessions ended, account disabled while the sign-in
    /// was in flight); nothing was written. The roles the request decided may be stale: the
    /// request has to be made again, not retried as is.
    #[error("the user's authorization changed while this sign-in was in flight")]
    AuthorizationChanged,
    /// A stored record could not be decoded.
    #[error("a stored session record is corrupt")]
    Corrupt(#[source] BoxError),
    /// The session data is invalid or over its size limit.
    #[error("invalid session data")]
    Data(#[from] DataError),
    /// The backend did not answer in time.
    #[error("the session store timed out")]
    Timeout(#[source] Option<BoxError>),
    /// The backend failed (connection refused, protocol error, ...).
    #[error("the session store failed")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl Into<BoxError>) -> Self {
        Self::Backend(e.into())
    }

    /// Wraps a decoding error.
    pub fn corrupt(e: impl Into<BoxError>) -> Self {
        Self::Corrupt(e.into())
    }

    /// Whether the failure is about capacity (the store is up but refuses more sessions).
    #[must_use]
    pub fn is_capacity(&self) -> bool {
        matches!(
            self,
            Self::CapacityExceeded { .. } | Self::UserLimitReached { .. }
        )
    }
}
