//! The per-request state of a [`Session`](super::Session): what was loaded, and what the
//! handler asked for so far.

use std::time::Duration;

use serde_json::{Map, Value};
use sessionward_core::{
    DataChanges, RoleSet, SessionHandle, SessionKey, SessionRecord, SessionToken, Timestamp, UserId,
};

use crate::error::SessionError;

/// What the presented token led to.
#[derive(Debug, Default)]
#[expect(
    clippy::large_enum_variant,
    reason = "held in the session's one allocation; a box would cost an allocation per load"
)]
pub(crate) enum Loaded {
    /// Nobody asked yet (lazy: a route that never uses the session costs no store call).
    #[default]
    NotYet,
    /// The presented token names this live record.
    Live(SessionRecord),
    /// No live record: nothing, a malformed or ambiguous value, or an unknown or expired ID.
    Absent,
}

impl Loaded {
    /// The live record, if one was loaded.
    pub(crate) fn live(&self) -> Option<&SessionRecord> {
        match self {
            Self::Live(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the loaded record has a signed-in user.
    pub(crate) fn signed_in(&self) -> bool {
        self.live().is_some_and(|r| r.user.is_some())
    }
}

/// The one change to the session's standing that the request asks for.
#[derive(Debug, Default)]
pub(crate) enum Intent {
    /// Data changes at most.
    #[default]
    None,
    /// `login()`: a new ID for `user` with `roles`. `discard_old`: the loaded record does not
    /// carry over and is deleted (it belonged to another user, or the request signed out
    /// first).
    SignIn {
        user: UserId,
        roles: RoleSet,
        discard_old: bool,
    },
    /// `set_roles()` on the signed-in session: the same session under a new ID.
    PrivilegeChange(RoleSet),
    /// `logout()`: the record is deleted.
    SignOut,
}

impl Intent {
    /// Whether the loaded record no longer stands behind this request.
    pub(crate) fn discards_loaded(&self) -> bool {
        matches!(
            self,
            Self::SignOut
                | Self::SignIn {
                    discard_old: true,
                    ..
                }
        )
    }
}

/// A lifetime of the session's own ("remember me").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub(crate) absolute: Duration,
    pub(crate) idle: Option<Duration>,
}

/// What the request asked for and the plan consumes.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) intent: Intent,
    pub(crate) changes: DataChanges,
    pub(crate) lifetime: Option<Lifetime>,
    /// The token of the session this request creates or rotates to, drawn when that is
    /// decided so that a bearer client's handler can hand it out.
    pub(crate) new_token: Option<(SessionToken, SessionHandle)>,
    /// The handler took the new token to hand it out itself: set no cookie.
    pub(crate) token_taken: bool,
    /// `remember()`: the persistence of the record this request creates or rotates to.
    pub(crate) persistent: Option<bool>,
}

impl Pending {
    /// Whether the handler asked for nothing at all.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.intent, Intent::None) && self.changes.is_empty()
    }
}

/// The state of one request's session.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) loaded: Loaded,
    /// The data as this request sees it (stored data plus this request's changes), parsed on
    /// first use.
    pub(crate) view: Option<Map<String, Value>>,
    pub(crate) pending: Pending,
    /// The latest authorization change of the user that this request itself recorded in the
    /// store (`logout_other_sessions`): a sign-in or privilege change of the same request
    /// dates its authorization no earlier, since the request made that change knowingly.
    pub(crate) authorized_floor: Option<Timestamp>,
}

impl State {
    /// The live record that still stands behind this request.
    pub(crate) fn standing(&self) -> Option<&SessionRecord> {
        self.loaded
            .live()
            .filter(|_| !self.pending.intent.discards_loaded())
    }

    /// The signed-in user after this request's changes.
    pub(crate) fn live_user(&self) -> Option<&UserId> {
        match &self.pending.intent {
            Intent::SignIn { user, .. } => Some(user),
            Intent::SignOut => None,
            _ => self.loaded.live().and_then(|r| r.user.as_ref()),
        }
    }

    /// The roles after this request's changes.
    pub(crate) fn roles(&self) -> RoleSet {
        match &self.pending.intent {
            Intent::SignIn { roles, .. } | Intent::PrivilegeChange(roles) => roles.clone(),
            Intent::SignOut => RoleSet::empty(),
            Intent::None => self
                .loaded
                .live()
                .map_or_else(RoleSet::empty, |r| r.roles.clone()),
        }
    }

    /// When the user last proved their credentials, `now` if they sign in in this request.
    pub(crate) fn authenticated_at(&self, now: Timestamp) -> Option<Timestamp> {
        match &self.pending.intent {
            Intent::SignIn { .. } => Some(now),
            Intent::SignOut => None,
            _ => self.loaded.live().and_then(|r| r.authenticated_at),
        }
    }

    /// The key of the record standing behind this request.
    pub(crate) fn current_key(&self) -> Option<SessionKey> {
        self.standing().map(|r| r.key)
    }

    /// Draws the token of the session this request will create, once.
    pub(crate) fn draw_token(&mut self) -> Result<(), SessionError> {
        if self.pending.new_token.is_none() {
            self.pending.new_token = Some(SessionToken::generate_with_handle()?);
        }
        Ok(())
    }

    /// Forgets the data changes and the parsed view (the loaded data no longer counts).
    pub(crate) fn drop_data(&mut self) {
        self.view = None;
        self.pending.changes = DataChanges::default();
    }

    /// The data as this request sees it, parsed on first use.
    pub(crate) fn view(&mut self) -> Result<&mut Map<String, Value>, SessionError> {
        if self.view.is_none() {
            let mut map = match self.standing() {
                Some(r) => r.data.to_map()?,
                None => Map::new(),
            };
            // Writes made before the first read (blind writes) are part of what this request
            // sees.
            let c = &self.pending.changes;
            if c.clear {
                map.clear();
            }
            for k in &c.remove {
                map.remove(k);
            }
            for (k, v) in &c.set {
                map.insert(k.clone(), v.clone());
            }
            self.view = Some(map);
        }
        Ok(self.view.get_or_insert_with(Map::new))
    }
}
