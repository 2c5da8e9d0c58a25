//! Loading the record a request presented, once, on first use.

use sessionward_core::{SessionKey, SessionRecord, StoreError};

use super::Session;
use super::state::Loaded;
use crate::error::SessionError;
use crate::events;
use crate::presented::Presented;

impl Session {
    /// Loads the record once (one store round trip), or decides without the store that there
    /// is none.
    pub(super) async fn ensure_loaded(&self) -> Result<(), SessionError> {
        {
            let mut state = self.state();
            if !matches!(state.loaded, Loaded::NotYet) {
                return Ok(());
            }
            // Nothing to load: decided under the state lock, once, without the load lock (a
            // sign-in without a cookie takes this path).
            let Presented::Token { token, .. } = &self.inner.presented else {
                state.loaded = self.nothing_to_load();
                return Ok(());
            };
            // A store that answers without waiting loads right here, under the state lock:
            // no load lock to take and no future to box.
            if let Some(store) = self.store().immediate() {
                let key = token.key();
                let found = store.load_now(&key, self.now());
                state.loaded = self.loaded_from(&key, found)?;
                return Ok(());
            }
        }
        let _guard = self.inner.load_lock.lock().await;
        if !matches!(self.state().loaded, Loaded::NotYet) {
            return Ok(());
        }
        let loaded = match &self.inner.presented {
            Presented::Token { token, .. } => {
                let key = token.key();
                let found = self.store().load(&key, self.now()).await;
                self.loaded_from(&key, found)?
            }
            _ => self.nothing_to_load(),
        };
        self.state().loaded = loaded;
        Ok(())
    }

    /// What the store's answer for `key` makes of the session.
    fn loaded_from(
        &self,
        key: &SessionKey,
        found: Result<Option<SessionRecord>, StoreError>,
    ) -> Result<Loaded, SessionError> {
        match found {
            Ok(Some(record)) => {
                if let Some(t) = &self.config().guess_throttle {
                    t.valid(key);
                }
                Ok(self.check_user_agent(record))
            }
            Ok(None) => {
                events::unknown(self.events(), key);
                self.guess_failed();
                Ok(Loaded::Absent)
            }
            Err(e) => {
                events::load_failed(self.events(), key, &e);
                Err(SessionError::Store(e))
            }
        }
    }

    /// What a request that presented no well-formed token loads: nothing (a malformed or
    /// ambiguous value is reported, and a malformed one counts for the guessing throttle).
    fn nothing_to_load(&self) -> Loaded {
        match &self.inner.presented {
            Presented::Malformed { via } => {
                events::malformed(self.events(), *via);
                self.guess_failed();
            }
            Presented::Ambiguous { via, .. } => events::ambiguous(self.events(), *via),
            Presented::Nothing | Presented::Token { .. } => {}
        }
        Loaded::Absent
    }

    /// Counts a malformed or unknown ID for the guessing throttle (SEC-34).
    fn guess_failed(&self) {
        let throttle = self.config().guess_throttle.as_ref();
        crate::throttle::count_failure(throttle, self.events(), self.now());
    }

    /// Compares the request's user agent with the one the session was created with (SEC-35).
    fn check_user_agent(&self, record: SessionRecord) -> Loaded {
        let Some(stored) = &record.user_agent else {
            return Loaded::Live(record);
        };
        if self.user_agent() == Some(stored.as_str()) {
            return Loaded::Live(record);
        }
        let bound = self.config().bind_user_agent;
        // Once per session, not per request (the limiter remembers which sessions reported).
        events::anomaly(self.events(), &record.key, bound);
        if bound {
            Loaded::Absent
        } else {
            Loaded::Live(record)
        }
    }
}
