//! [`SessionInfo`]: one session as a "your sessions" page or an admin page shows it.

use serde::Serialize;
use sessionward_core::{SessionHandle, SessionKey, SessionRecord, Timestamp};

/// One session as a "your sessions" page shows it. Holds no token and no key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The public handle: end the session with it.
    pub handle: SessionHandle,
    /// When the session was created.
    pub created_at: Timestamp,
    /// The last recorded activity.
    pub last_seen_at: Timestamp,
    /// When the user last signed in on it.
    pub authenticated_at: Option<Timestamp>,
    /// When it ends unless used (or at the latest).
    pub expires_at: Timestamp,
    /// The client's user agent, truncated.
    pub user_agent: Option<String>,
    /// The roles it carries.
    pub roles: Vec<String>,
    /// Whether it is the session of the request that asked.
    pub current: bool,
}

impl SessionInfo {
    pub(crate) fn from_record(r: &SessionRecord, current: Option<&SessionKey>) -> Self {
        Self {
            handle: r.handle,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            authenticated_at: r.authenticated_at,
            expires_at: r.expires_at(),
            user_agent: r.user_agent.clone(),
            roles: r.roles.to_vec(),
            current: current == Some(&r.key),
        }
    }
}
