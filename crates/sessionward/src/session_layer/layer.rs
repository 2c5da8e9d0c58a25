//! [`SessionLayer`].

use std::fmt;
use std::sync::Arc;

use sessionward_core::SessionStore;
use tower_layer::Layer;

use super::service::SessionService;
use crate::admin::Sessions;
use crate::config::SessionConfig;
use crate::shared::Shared;

/// The session middleware: reads the session token from each request, lazily loads the record
/// when a handler asks, and writes what the handler changed when the response comes back.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use sessionward::{MemoryStore, Session, SessionLayer};
///
/// async fn handler(session: Session) -> String {
///     format!("{:?}", session.user().await.ok().flatten())
/// }
///
/// # #[tokio::main] async fn main() {
/// let app: Router = Router::new()
///     .route("/", get(handler))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// # }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &self.shared.store)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl SessionLayer {
    /// A layer over `store` with the secure defaults of [`SessionConfig`].
    pub fn new(store: impl SessionStore) -> Self {
        Self::with_config(store, SessionConfig::default())
    }

    /// A layer over `store` with `config`.
    pub fn with_config(store: impl SessionStore, config: SessionConfig) -> Self {
        Self::from_shared_store(Arc::new(store), config)
    }

    /// A layer over a store already shared as `Arc<dyn SessionStore>`.
    pub fn from_shared_store(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                store: crate::traced::Traced::wrap(store),
                config,
            }),
        }
    }

    /// The application-wide handle for admin actions, for use outside requests (a CLI
    /// command, a background job).
    #[must_use]
    pub fn sessions(&self) -> Sessions {
        Sessions::new(self.shared.clone())
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.shared.clone())
    }
}
