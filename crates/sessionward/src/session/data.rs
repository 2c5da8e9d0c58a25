//! The handler API for the session's data: typed values under string keys.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sessionward_core::{DataError, SessionData};

use super::Session;
use super::state::Loaded;
use crate::error::SessionError;

impl Session {
    /// Reads a value.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Serde`] if the stored
    /// value does not deserialize as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.get_value(key).await? {
            Some(v) => Ok(Some(serde_json::from_value(v)?)),
            None => Ok(None),
        }
    }

    /// Reads a value as JSON.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        Ok(state.view()?.get(key).cloned())
    }

    /// Every key and value.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn entries(&self) -> Result<Map<String, Value>, SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        Ok(state.view()?.clone())
    }

    /// Sets a value. Without a session, this creates one (anonymous) when the response goes
    /// out, under a fresh server-generated ID: a presented unknown ID is never adopted.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Serde`] if `value` does not
    /// serialize, [`SessionError::Data`] if the data would exceed the configured limit.
    pub async fn insert<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        let limit = self.config().max_data_bytes;
        {
            // A write to a presented session that nothing in this request has read is applied
            // blind: no load now, and one store round trip (a merging save) when the response
            // goes out. The store enforces the size cap on the merged record; if the ID turns
            // out to be dead, the write goes to a new session under a fresh ID.
            let mut state = self.state();
            if matches!(state.loaded, Loaded::NotYet) && self.inner.presented.token().is_some() {
                let size = key.len() + value.to_string().len() + 6;
                if size > limit {
                    return Err(SessionError::Data(DataError::TooLarge { size, limit }));
                }
                state.pending.changes.insert(key, value);
                return Ok(());
            }
        }
        self.ensure_loaded().await?;
        let mut guard = self.state();
        let state = &mut *guard;
        if state.view.is_none() && !state.pending.changes.clear {
            // Nothing parsed the data yet: measure the merge from the stored text (the values
            // this write does not change are not parsed) and leave the parse to a read.
            let changes = &mut state.pending.changes;
            let was_set = changes.set.insert(key.to_owned(), value);
            let was_removed = changes.remove.remove(key);
            let size = match state.standing() {
                Some(r) => r.data.merged_len(&state.pending.changes),
                None => SessionData::empty().merged_len(&state.pending.changes),
            };
            if !matches!(size, Ok(size) if size <= limit) {
                let changes = &mut state.pending.changes;
                match was_set {
                    Some(old) => changes.set.insert(key.to_owned(), old),
                    None => changes.set.remove(key),
                };
                if was_removed {
                    changes.remove.insert(key.to_owned());
                }
                let size = size?;
                return Err(SessionError::Data(DataError::TooLarge { size, limit }));
            }
            if state.standing().is_none() {
                state.draw_token()?;
            }
            return Ok(());
        }
        let view = state.view()?;
        let old = view.insert(key.to_owned(), value.clone());
        let size = serialized_len(&*view);
        if size > limit {
            match old {
                Some(old) => view.insert(key.to_owned(), old),
                None => view.remove(key),
            };
            return Err(SessionError::Data(DataError::TooLarge { size, limit }));
        }
        state.pending.changes.insert(key, value);
        if state.standing().is_none() {
            state.draw_token()?;
        }
        Ok(())
    }

    /// Removes a value; returns the old one.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn remove(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        let old = state.view()?.remove(key);
        if old.is_some() {
            state.pending.changes.remove(key);
        }
        Ok(old)
    }

    /// Removes every value (the session and its sign-in stay).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        state.view()?.clear();
        state.pending.changes.clear();
        Ok(())
    }
}

/// The length of `value`'s JSON, counted without building it.
fn serialized_len(value: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}
