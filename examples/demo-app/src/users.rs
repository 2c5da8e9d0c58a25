//! The demo's user directory: argon2id password hashes and roles, in memory.
//!
//! A real service keeps users in its database; what carries over is how passwords are
//! checked: argon2id with OWASP's parameters, verification off the async runtime, and an
//! unknown username costing the same as a wrong password, and a bound on how many hashes run
//! at once: each argon2id verification holds 19 MiB, so without one, a burst of sign-ins (no
//! credentials needed: unknown usernames cost the same) grows memory with the burst. Past the
//! bound a sign-in is refused at once with [`Busy`] (a 503) rather than queued.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

struct User {
    hash: String,
    roles: Vec<String>,
}

/// The users, shared by all requests.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds password hashes: not for logs
pub(crate) struct Users {
    inner: Arc<RwLock<BTreeMap<String, User>>>,
    /// Verified against for unknown usernames, so that they cost what a wrong password costs.
    dummy_hash: Arc<str>,
    /// Permits for password verifications running at once.
    hashing: Arc<Semaphore>,
}

/// Every hashing permit is taken: the sign-in is refused (503), not queued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy;

impl Users {
    /// The demo's three users, hashed now (at start-up); at most `hash_concurrency` password
    /// verifications run at once.
    pub(crate) fn seeded(hash_concurrency: usize) -> Result<Self, argon2::password_hash::Error> {
        let mut users = BTreeMap::new();
        for (name, password, roles) in [
            ("alice", "alice-password", &["user"][..]),
            ("bob", "bob-password", &["user"][..]),
            ("admin", "admin-password", &["user", "admin"][..]),
        ] {
            users.insert(
                name.to_owned(),
                User {
                    hash: hash(password)?,
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                },
            );
        }
        Ok(Self {
            inner: Arc::new(RwLock::new(users)),
            dummy_hash: Arc::from(hash("no user has this password")?),
            hashing: Arc::new(Semaphore::new(hash_concurrency.max(1))),
        })
    }

    /// The roles of `username` if `password` is theirs. Runs the hash on a blocking thread,
    /// holding a hashing permit until it is done (even if the request is dropped meanwhile);
    /// [`Busy`] at once if none is free.
    pub(crate) async fn verify(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Vec<String>>, Busy> {
        let permit = Arc::clone(&self.hashing)
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        let (stored, roles) = {
            let users = self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match users.get(username) {
                Some(u) => (u.hash.clone(), Some(u.roles.clone())),
                None => (self.dummy_hash.to_string(), None),
            }
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&stored)
                .is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        Ok(if ok { roles } else { None })
    }

    /// Replaces the password of `username` (hashed on a blocking thread, under a hashing
    /// permit); `Ok(false)` for an unknown user, [`Busy`] at once if no permit is free.
    pub(crate) async fn set_password(&self, username: &str, password: &str) -> Result<bool, Busy> {
        let permit = Arc::clone(&self.hashing)
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        let password = password.to_owned();
        let hashed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash(&password)
        })
        .await;
        let Ok(Ok(hashed)) = hashed else {
            return Err(Busy);
        };
        let mut users = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(match users.get_mut(username) {
            Some(u) => {
                u.hash = hashed;
                true
            }
            None => false,
        })
    }

    /// Every user and their roles.
    pub(crate) fn list(&self) -> Vec<(String, Vec<String>)> {
        let users = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        users
            .iter()
            .map(|(n, u)| (n.clone(), u.roles.clone()))
            .collect()
    }

    /// Replaces a user's roles; `false` for an unknown user.
    pub(crate) fn set_roles(&self, username: &str, roles: Vec<String>) -> bool {
        let mut users = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match users.get_mut(username) {
            Some(u) => {
                u.roles = roles;
                true
            }
            None => false,
        }
    }
}
