//! Runs a [`Plan`] against the store. It follows the plan's decisions, including its
//! follow-ups for `Gone` and `Conflict`, and decides nothing itself.

use std::future::Future;

use sessionward_core::{
    ChangeSet, DataChanges, ImmediateStore, RotateOutcome, SaveOutcome, SessionKey, SessionRecord,
    SessionStore, SessionToken, StoreError, Timestamp,
};

use super::plan::{
    Action, Issued, NewSession, OnConflict, OnGone, Plan, RotateFrom, Rotation, anonymous_record,
    persistent,
};
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::events;

/// Attempts at a write that races other writes, before giving up with 409.
const ATTEMPTS: usize = 3;

/// What the response must say about the session.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// A token was issued (a new session, a rotation, a re-issued persistent cookie).
    pub(crate) issued: Option<Issued>,
    pub(crate) clear_cookie: bool,
    /// The session was ended by `logout()`.
    pub(crate) logged_out: bool,
    /// The session's data was written.
    pub(crate) wrote: bool,
    /// The loaded record had a signed-in user.
    pub(crate) signed_in: bool,
}

impl Outcome {
    /// The token of the new session `record` goes out; in the cookie if `cookie`.
    fn issue(token: SessionToken, record: &SessionRecord, cookie: bool, persistent: bool) -> Self {
        Self {
            issued: Some(Issued {
                token,
                absolute_expires_at: record.absolute_expires_at,
                cookie,
                persistent,
            }),
            ..Self::default()
        }
    }
}

/// How a commit reaches the store: its asynchronous methods ([`Async`]), or its
/// [`ImmediateStore`] face ([`Now`]), whose calls complete at once, so that a commit through
/// it completes on its first poll and needs no boxed future.
pub(crate) trait Backend {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError>;
    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn save(
        &self,
        key: &SessionKey,
        expected: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError>;
    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError>;
    async fn rotate(
        &self,
        old: &SessionKey,
        expected: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError>;
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError>;
}

/// A store's asynchronous methods as a [`Backend`].
#[derive(Clone, Copy)]
pub(crate) struct Async<'a>(pub(crate) &'a (dyn SessionStore + 'static));

impl Backend for Async<'_> {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        SessionStore::create(self.0, record).await
    }
    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        SessionStore::load(self.0, key, now).await
    }
    async fn save(
        &self,
        key: &SessionKey,
        expected: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        SessionStore::save(self.0, key, expected, changes, now).await
    }
    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        SessionStore::touch(self.0, key, now).await
    }
    async fn rotate(
        &self,
        old: &SessionKey,
        expected: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        SessionStore::rotate(self.0, old, expected, new, now).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        SessionStore::delete(self.0, key).await
    }
}

/// A store's [`ImmediateStore`] face as a [`Backend`].
#[derive(Clone, Copy)]
pub(crate) struct Now<'a>(pub(crate) &'a dyn ImmediateStore);

impl Backend for Now<'_> {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.0.create_now(record)
    }
    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.0.load_now(key, now)
    }
    async fn save(
        &self,
        key: &SessionKey,
        expected: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        self.0.save_now(key, expected, changes, now)
    }
    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        self.0.touch_now(key, now)
    }
    async fn rotate(
        &self,
        old: &SessionKey,
        expected: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.0.rotate_now(old, expected, new, now)
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.0.delete_now(key)
    }
}

/// What a commit runs against.
pub(crate) struct Store<'a, B> {
    pub(crate) store: B,
    pub(crate) config: &'a SessionConfig,
    pub(crate) now: Timestamp,
    /// The request's user agent, as a record keeps it.
    pub(crate) user_agent: Option<&'a str>,
    /// The request's event context (rate limits, client).
    pub(crate) events: events::Cx<'a>,
}

/// One attempt's result: done, or try again from this state.
enum Attempt<S, T> {
    Done(T),
    Again(S),
}

/// Runs `attempt` until it is done, at most [`ATTEMPTS`] times, then fails with 409. The
/// second argument tells the attempt whether it is the last.
async fn retry<S, T, F, Fut>(mut state: S, mut attempt: F) -> Result<T, SessionError>
where
    F: FnMut(S, bool) -> Fut,
    Fut: Future<Output = Result<Attempt<S, T>, SessionError>>,
{
    for n in 1..=ATTEMPTS {
        match attempt(state, n == ATTEMPTS).await? {
            Attempt::Done(t) => return Ok(t),
            Attempt::Again(s) => state = s,
        }
    }
    Err(SessionError::Conflict)
}

/// Runs `plan`.
pub(crate) async fn commit<B: Backend>(
    cx: &Store<'_, B>,
    plan: Plan,
) -> Result<Outcome, SessionError> {
    let mut outcome = run(cx, plan.action).await?;
    outcome.signed_in = plan.signed_in;
    Ok(outcome)
}

fn gone(on_gone: OnGone) -> Outcome {
    let clear_cookie = matches!(on_gone, OnGone::Drop { clear_cookie: true });
    Outcome {
        clear_cookie,
        ..Outcome::default()
    }
}

async fn run<B: Backend>(cx: &Store<'_, B>, action: Action) -> Result<Outcome, SessionError> {
    let (store, now) = (&cx.store, cx.now);
    match action {
        Action::Nothing { clear_cookie } => Ok(Outcome {
            clear_cookie,
            ..Outcome::default()
        }),
        Action::Touch { key } => {
            store.touch(&key, now).await?;
            Ok(Outcome::default())
        }
        Action::BlindSave {
            key,
            changes,
            on_gone,
        } => {
            // Data-only: merged whatever the version. A store may still answer Conflict when
            // the record changed between its check and its answer: try again.
            let saved = retry(Version::Any, |v, _| save(store, &key, v, &changes, now)).await?;
            if saved {
                return Ok(Outcome {
                    wrote: true,
                    ..Outcome::default()
                });
            }
            let OnGone::CreateAnonymous { deliver_cookie } = on_gone else {
                return Ok(gone(on_gone));
            };
            events::unknown(cx.events, &key);
            let throttle = cx.config.guess_throttle.as_ref();
            crate::throttle::count_failure(throttle, cx.events, now);
            let (token, handle) = SessionToken::generate_with_handle()?;
            let record = anonymous_record(&token, handle, now, cx.config, cx.user_agent);
            create(cx, record, &changes.data, token, deliver_cookie).await
        }
        Action::Save {
            key,
            version,
            changes,
            reissue,
            on_gone,
        } => {
            // Another request changed the record since it was read: this request's changes
            // go on top of the current version.
            let first = Version::Exactly(version);
            let saved = retry(first, |v, _| save(store, &key, v, &changes, now)).await?;
            if !saved {
                events::gone(cx.events, &key);
                return Ok(gone(on_gone));
            }
            Ok(Outcome {
                issued: reissue,
                wrote: true,
                ..Outcome::default()
            })
        }
        Action::Create(new) => {
            let NewSession {
                record,
                changes,
                token,
                deliver_cookie,
            } = *new;
            create(cx, record, &changes, token, deliver_cookie).await
        }
        Action::Rotate(rotation) => rotate(cx, *rotation).await,
        Action::Logout { keys, clear_cookie } => {
            // Every presented session is tried even if one delete fails; the first failure is
            // the answer (the caller still clears the cookie).
            let mut failed = None;
            for key in &keys {
                match store.delete(key).await {
                    Ok(_) => events::destroyed(cx.events, key),
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
            Ok(Outcome {
                clear_cookie,
                logged_out: true,
                ..Outcome::default()
            })
        }
    }
}

async fn rotate<B: Backend>(
    cx: &Store<'_, B>,
    rotation: Rotation,
) -> Result<Outcome, SessionError> {
    let (key, reason) = (rotation.new.record.key, rotation.reason);
    let out = rotate_or_create(cx, rotation).await;
    if matches!(out, Err(SessionError::AuthorizationChanged)) {
        // The store refused the new session: the user's authorization changed while this
        // request ran (SEC-16). The error answers 409 and sets no cookie.
        events::authorization_changed(cx.events, &key, reason.as_str());
    }
    out
}

async fn rotate_or_create<B: Backend>(
    cx: &Store<'_, B>,
    rotation: Rotation,
) -> Result<Outcome, SessionError> {
    let Rotation {
        from,
        new,
        reason,
        on_conflict,
        on_gone,
    } = rotation;
    let NewSession {
        mut record,
        changes,
        token,
        deliver_cookie,
    } = new;
    record.data = record
        .data
        .apply(&changes, Some(cx.config.max_data_bytes))?;
    let (rotated, record) = match from {
        RotateFrom::Record { key, version } => {
            let attempt = |s, last| rotate_once(cx, &key, s, &changes, on_conflict, last);
            retry((version, record), attempt).await?
        }
        RotateFrom::Delete(key) => {
            cx.store.delete(&key).await?;
            (false, record)
        }
        RotateFrom::Nothing => (false, record),
    };
    if !rotated {
        if on_gone != OnGone::CreateNew {
            return Ok(gone(on_gone));
        }
        cx.store.create(&record).await?;
    }
    events::issued(cx.events, &record.key, rotated, reason.as_str());
    let persistent = persistent(&record, cx.config);
    Ok(Outcome::issue(token, &record, deliver_cookie, persistent))
}

/// Stores a new session holding `changes`, and says to issue its token.
async fn create<B: Backend>(
    cx: &Store<'_, B>,
    mut record: SessionRecord,
    changes: &DataChanges,
    token: SessionToken,
    deliver_cookie: bool,
) -> Result<Outcome, SessionError> {
    record.data = record.data.apply(changes, Some(cx.config.max_data_bytes))?;
    cx.store.create(&record).await?;
    events::created(cx.events, &record.key);
    let persistent = persistent(&record, cx.config);
    Ok(Outcome::issue(token, &record, deliver_cookie, persistent))
}

/// The version a save expects.
#[derive(Clone, Copy)]
enum Version {
    /// A blind save: merged whatever the version.
    Any,
    Exactly(u64),
}

/// One save: `true` saved, `false` gone; on `Conflict`, the version to expect next.
async fn save<B: Backend>(
    store: &B,
    key: &SessionKey,
    version: Version,
    changes: &ChangeSet,
    now: Timestamp,
) -> Result<Attempt<Version, bool>, SessionError> {
    let expected = match version {
        Version::Any => None,
        Version::Exactly(v) => Some(v),
    };
    Ok(match store.save(key, expected, changes, now).await? {
        SaveOutcome::Saved { .. } => Attempt::Done(true),
        SaveOutcome::Gone => Attempt::Done(false),
        SaveOutcome::Conflict { current_version } => Attempt::Again(match version {
            Version::Any => Version::Any,
            Version::Exactly(_) => Version::Exactly(current_version),
        }),
    })
}

/// One rotation of the record `key` at `expected` to `record`: whether it rotated, and the
/// record; on `Conflict`, what `on_conflict` says.
async fn rotate_once<B: Backend>(
    cx: &Store<'_, B>,
    key: &SessionKey,
    (expected, mut record): (u64, SessionRecord),
    changes: &DataChanges,
    on_conflict: OnConflict,
    last: bool,
) -> Result<Attempt<(u64, SessionRecord), (bool, SessionRecord)>, SessionError> {
    let limit = Some(cx.config.max_data_bytes);
    match cx
        .store
        .rotate(key, Some(expected), &record, cx.now)
        .await?
    {
        RotateOutcome::Rotated => Ok(Attempt::Done((true, record))),
        RotateOutcome::Gone => Ok(Attempt::Done((false, record))),
        RotateOutcome::Conflict { .. } if on_conflict == OnConflict::Refuse || last => {
            Err(SessionError::Conflict)
        }
        RotateOutcome::Conflict { .. } => match cx.store.load(key, cx.now).await? {
            Some(current) => {
                record.data = current.data.apply(changes, limit)?;
                Ok(Attempt::Again((current.version, record)))
            }
            None => Ok(Attempt::Done((false, record))),
        },
    }
}
