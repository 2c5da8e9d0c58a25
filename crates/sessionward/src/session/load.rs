//! Loading the record a request presented, once, on first use.

use sessionward_core::SessionRecord;

use super::Session;
use super::state::Loaded;
use crate::error::SessionError;
use crate::events;
use crate::presented::Presented;

impl Session {
    /// Loads the record once (one store round trip), or decides without the store that there
    /// is none.
    pub(super) async fn ensure_loaded(&self) -> Result<(), SessionError> {
        if !matches!(self.state().loaded, Loaded::NotYet) {
            return Ok(());
        }
        let _guard = self.inner.load_lock.lock().await;
        if !matches!(self.state().loaded, Loaded::NotYet) {
            return Ok(());
        }
        let loaded = match &self.inner.presented {
            Presented::Nothing => Loaded::Absent,
            Presented::Malformed { via } => {
                events::malformed(*via);
                Loaded::Absent
            }
            Presented::Ambiguous { via, .. } => {
                events::ambiguous(*via);
                Loaded::Absent
            }
            Presented::Token { token, .. } => {
                let key = token.key();
                match self.store().load(&key, self.now()).await {
                    Ok(Some(record)) => self.check_user_agent(record),
                    Ok(None) => {
                        events::unknown(&key);
                        Loaded::Absent
                    }
                    Err(e) => {
                        events::load_failed(&key, &e);
                        return Err(SessionError::Store(e));
                    }
                }
            }
        };
        self.state().loaded = loaded;
        Ok(())
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
        events::anomaly(&record.key, bound);
        if bound {
            Loaded::Absent
        } else {
            Loaded::Live(record)
        }
    }
}
