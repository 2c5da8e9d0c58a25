//! What a request writes: a pure function from what was loaded, what the handler asked for,
//! the time, the configuration and what the request presented, to a [`Plan`]. No store call,
//! no clock, no random draw happens here (the tokens a plan issues were drawn when the
//! handler asked); every decision does, including what to do when the store answers `Gone`
//! or `Conflict`. The table in `docs/architecture.md` lists the rows; the tests below follow
//! it row by row.

use std::time::Duration;

use sessionward_core::{
    ChangeSet, DataChanges, SessionData, SessionHandle, SessionKey, SessionRecord, SessionToken,
    Timestamp,
};

use super::state::{Intent, Lifetime, Loaded, Pending};
use crate::config::SessionConfig;
use crate::presented::Presented;

/// What the request presented, as the plan needs it.
pub(crate) struct Request<'a> {
    pub(crate) presented: &'a Presented,
    /// The user agent as a record keeps it.
    pub(crate) user_agent: Option<&'a str>,
    /// The `authorized_at` of a sign-in or a privilege change (SEC-16): the request's start
    /// less the clock margin.
    pub(crate) authorized_at: Timestamp,
}

/// What to write, and what the response must know whatever the store answers.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) action: Action,
    /// The loaded record had a signed-in user (the response is then not cached).
    pub(crate) signed_in: bool,
}

/// The store work of a plan.
#[derive(Debug)]
pub(crate) enum Action {
    /// No store call.
    Nothing { clear_cookie: bool },
    /// Record activity.
    Touch { key: SessionKey },
    /// Writes made without reading: one merging save of the presented ID, retried on
    /// `Conflict`.
    BlindSave {
        key: SessionKey,
        changes: Box<ChangeSet>,
        on_gone: OnGone,
    },
    /// A versioned save of the loaded record; on `Conflict`, retried on the current version
    /// (this request's lifetime change is the newer intent).
    Save {
        key: SessionKey,
        version: u64,
        changes: Box<ChangeSet>,
        /// Re-issue the presented token (a persistent cookie whose lifetime changed).
        reissue: Option<Issued>,
        on_gone: OnGone,
    },
    /// A new session.
    Create(Box<NewSession>),
    /// A new ID for a sign-in or a privilege change.
    Rotate(Box<Rotation>),
    /// Delete every well-formed ID the request presented.
    Logout {
        keys: Vec<SessionKey>,
        clear_cookie: bool,
    },
}

/// A session record to store, with the request's data changes still to apply.
#[derive(Debug)]
pub(crate) struct NewSession {
    pub(crate) record: SessionRecord,
    pub(crate) changes: DataChanges,
    pub(crate) token: SessionToken,
    /// Whether the cookie carries the token.
    pub(crate) deliver_cookie: bool,
}

/// What a rotation starts from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RotateFrom {
    /// No live record: the new one is created.
    Nothing,
    /// The loaded record does not carry over: delete it, create the new one.
    Delete(SessionKey),
    /// Replace the loaded record at `version` atomically.
    Record { key: SessionKey, version: u64 },
}

/// Why a rotation issues a new ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Login,
    PrivilegeChange,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::PrivilegeChange => "privilege change",
        }
    }
}

/// What to do when a rotation meets a concurrent change of the old record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// A sign-in is authoritative for user and roles: reload the record and rebuild the new
    /// one's data from it, so concurrent saves survive.
    Rebuild,
    /// Roles computed from a stale read must not undo a concurrent change (a demotion): 409.
    Refuse,
}

/// What to do when the store answers that the record is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnGone {
    /// A dead ID is never adopted: the writes go to a new anonymous session under a fresh ID.
    CreateAnonymous { deliver_cookie: bool },
    /// Store the new record of the rotation as a new session.
    CreateNew,
    /// The session ended while the request ran: drop its writes, never resurrect it.
    Drop { clear_cookie: bool },
}

#[derive(Debug)]
pub(crate) struct Rotation {
    pub(crate) from: RotateFrom,
    pub(crate) new: NewSession,
    pub(crate) reason: Reason,
    pub(crate) on_conflict: OnConflict,
    pub(crate) on_gone: OnGone,
}

/// A token the response hands out, with its absolute expiry.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) token: SessionToken,
    pub(crate) absolute_expires_at: Timestamp,
    /// Whether the cookie carries it (not when the handler took it for a bearer client).
    pub(crate) cookie: bool,
    /// Whether the cookie outlives the browser (`Max-Age` = the remaining absolute lifetime).
    pub(crate) persistent: bool,
}

/// Whether `record`'s cookie is persistent: its own choice ("remember me"), else the layer's
/// default.
pub(crate) fn persistent(record: &SessionRecord, config: &SessionConfig) -> bool {
    record.persistent.unwrap_or(config.persistent)
}

/// Decides what the request writes. See the table in `docs/architecture.md`.
pub(crate) fn plan(
    loaded: &Loaded,
    pending: Pending,
    now: Timestamp,
    config: &SessionConfig,
    request: &Request<'_>,
) -> Plan {
    Plan {
        signed_in: loaded.signed_in(),
        action: action(loaded, pending, now, config, request),
    }
}

fn action(
    loaded: &Loaded,
    pending: Pending,
    now: Timestamp,
    config: &SessionConfig,
    request: &Request<'_>,
) -> Action {
    let presented = request.presented;
    let live = loaded.live();
    // A dead cookie (unknown, expired, malformed, ambiguous) the session was consulted for
    // is cleared: the client drops an ID the server no longer knows.
    let dead_cookie = live.is_none() && presented.via_cookie() && !matches!(loaded, Loaded::NotYet);
    let nothing = Action::Nothing {
        clear_cookie: dead_cookie,
    };
    // Whether a token this request issues goes out in a cookie: not when the handler took it
    // for a bearer client, not without the cookie transport, and not to a client that
    // presented its session as a bearer token.
    let deliver_cookie =
        !pending.token_taken && config.transport.cookie() && !presented.via_bearer();
    let Pending {
        intent,
        changes,
        lifetime,
        new_token,
        persistent,
        ..
    } = pending;

    let discard = intent.discards_loaded();
    match intent {
        Intent::SignOut => Action::Logout {
            keys: presented.candidate_keys(),
            clear_cookie: presented.via_cookie() || config.transport.cookie(),
        },
        Intent::SignIn { .. } | Intent::PrivilegeChange(_) => {
            let Some((token, handle)) = new_token else {
                return nothing;
            };
            let carry = live.filter(|_| !discard);
            let mut record = anonymous_record(&token, handle, now, config, request.user_agent);
            record.data = carry.map_or_else(SessionData::empty, |r| r.data.clone());
            let new = |record| NewSession {
                record,
                changes,
                token,
                deliver_cookie,
            };
            if let Intent::SignIn { user, roles, .. } = intent {
                record.user = Some(user);
                record.roles = roles;
                record.authenticated_at = Some(now);
                record.authorized_at = request.authorized_at;
                record.idle_timeout = config.idle_timeout;
                if let Some(old) = carry {
                    record.created_at = old.created_at;
                    record.persistent = old.persistent;
                }
                // Browser-session or remembered, as this sign-in chose (`remember()`).
                if persistent.is_some() {
                    record.persistent = persistent;
                }
                if let Some(lt) = lifetime {
                    // A sign-in may set any lifetime: the user just proved who they are.
                    own_lifetime(&mut record, now, lt);
                }
                let from = match live {
                    Some(r) if discard => RotateFrom::Delete(r.key),
                    Some(r) => RotateFrom::Record {
                        key: r.key,
                        version: r.version,
                    },
                    None => RotateFrom::Nothing,
                };
                return Action::Rotate(Box::new(Rotation {
                    from,
                    new: new(record),
                    reason: Reason::Login,
                    on_conflict: OnConflict::Rebuild,
                    on_gone: OnGone::CreateNew,
                }));
            }
            let (Intent::PrivilegeChange(roles), Some(old)) = (intent, carry) else {
                return nothing;
            };
            record.user = old.user.clone();
            record.roles = roles;
            // New roles: decided by this request (SEC-16).
            record.authorized_at = request.authorized_at;
            // "Remember me" survives the rotation, unless this request chose again.
            record.persistent = persistent.or(old.persistent);
            // The same session, with a new ID: it keeps its public handle.
            record.handle = old.handle;
            record.authenticated_at = old.authenticated_at;
            record.created_at = old.created_at;
            record.idle_timeout = old.idle_timeout;
            record.user_agent = old.user_agent.clone().or(record.user_agent);
            // Rotation never extends the absolute expiry (SEC-22).
            record.absolute_expires_at = old.absolute_expires_at;
            if let Some(lt) = lifetime {
                let (absolute, idle) = shortened(old, lt);
                record.absolute_expires_at = absolute;
                record.idle_timeout = idle;
            }
            Action::Rotate(Box::new(Rotation {
                from: RotateFrom::Record {
                    key: old.key,
                    version: old.version,
                },
                new: new(record),
                reason: Reason::PrivilegeChange,
                on_conflict: OnConflict::Refuse,
                // A privilege change does not bring an ended session back.
                on_gone: OnGone::Drop {
                    clear_cookie: presented.via_cookie(),
                },
            }))
        }
        Intent::None => {
            if matches!(loaded, Loaded::NotYet)
                && let Some(token) = presented.token()
            {
                // Only blind writes get here (anything else loads first).
                if changes.is_empty() {
                    return Action::Nothing {
                        clear_cookie: false,
                    };
                }
                return Action::BlindSave {
                    key: token.key(),
                    changes: Box::new(ChangeSet {
                        data: changes,
                        last_seen_at: Some(now),
                        data_limit: Some(config.max_data_bytes),
                        ..ChangeSet::default()
                    }),
                    on_gone: OnGone::CreateAnonymous { deliver_cookie },
                };
            }
            if let Some(old) = live {
                return save(old, changes, lifetime, now, config, presented);
            }
            if changes.is_empty() {
                return nothing;
            }
            // A write without a live session: a new anonymous session under a fresh ID.
            let Some((token, handle)) = new_token else {
                return nothing;
            };
            let mut record = anonymous_record(&token, handle, now, config, request.user_agent);
            if let Some(lt) = lifetime {
                own_lifetime(&mut record, now, lt);
            }
            Action::Create(Box::new(NewSession {
                record,
                changes,
                token,
                deliver_cookie,
            }))
        }
    }
}

/// The write to a loaded record with no change of standing: a save, a touch, or nothing.
fn save(
    old: &SessionRecord,
    data: DataChanges,
    lifetime: Option<Lifetime>,
    now: Timestamp,
    config: &SessionConfig,
    presented: &Presented,
) -> Action {
    let mut changes = ChangeSet {
        data,
        data_limit: Some(config.max_data_bytes),
        ..ChangeSet::default()
    };
    if let Some(lt) = lifetime {
        let (absolute, idle) = shortened(old, lt);
        changes.absolute_expires_at = Some(absolute);
        changes.idle_timeout = Some(idle);
    }
    let touch_due = now.saturating_since(old.last_seen_at) >= config.touch_interval;
    if !changes.data.is_empty() || changes.is_structural() {
        // Activity is recorded at most once per touch interval, writes included: a save that
        // leaves the expiry alone is cheaper for every store (PostgreSQL can update the row
        // in place, without touching its indexes).
        if touch_due {
            changes.last_seen_at = Some(now);
        }
        // Re-issue a persistent cookie whose lifetime changed; never turn a bearer token
        // into a cookie.
        let remembered = persistent(old, config);
        let reissue =
            lifetime.is_some() && remembered && config.transport.cookie() && presented.via_cookie();
        let absolute_expires_at = changes
            .absolute_expires_at
            .unwrap_or(now + config.absolute_timeout);
        return Action::Save {
            key: old.key,
            version: old.version,
            reissue: presented.token().filter(|_| reissue).map(|token| Issued {
                token: token.clone(),
                absolute_expires_at,
                cookie: true,
                persistent: remembered,
            }),
            changes: Box::new(changes),
            on_gone: OnGone::Drop {
                clear_cookie: presented.via_cookie(),
            },
        };
    }
    if touch_due {
        return Action::Touch { key: old.key };
    }
    Action::Nothing {
        clear_cookie: false,
    }
}

/// The lifetime `lt` asks for on an existing session, counted from sign-in (creation for an
/// anonymous session). A signed-in session's lifetime only ever shortens without a sign-in
/// (SEC-22).
fn shortened(old: &SessionRecord, lt: Lifetime) -> (Timestamp, Duration) {
    let base = old.authenticated_at.unwrap_or(old.created_at);
    let mut absolute = base + lt.absolute;
    let mut idle = lt.idle.unwrap_or(old.idle_timeout);
    if old.user.is_some() {
        absolute = absolute.min(old.absolute_expires_at);
        idle = idle.min(old.idle_timeout);
    }
    (absolute, idle)
}

/// A new session's own lifetime, counted from now.
fn own_lifetime(record: &mut SessionRecord, now: Timestamp, lt: Lifetime) {
    record.absolute_expires_at = now + lt.absolute;
    if let Some(idle) = lt.idle {
        record.idle_timeout = idle;
    }
}

/// A new anonymous record for `token`, with the configured timeouts (the anonymous idle
/// timeout) and the request's user agent.
pub(crate) fn anonymous_record(
    token: &SessionToken,
    handle: SessionHandle,
    now: Timestamp,
    config: &SessionConfig,
    user_agent: Option<&str>,
) -> SessionRecord {
    let mut record = SessionRecord::new(
        token.key(),
        handle,
        now,
        config.anonymous_idle_timeout,
        config.absolute_timeout,
    );
    record.user_agent = user_agent.map(str::to_owned);
    record
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
