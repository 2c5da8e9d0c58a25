//! [`RequireRoleLayer`] and the functions that build it.

use std::sync::Arc;

use tower_layer::Layer;

use super::service::RequireRoleService;

/// A route layer that lets through only signed-in users whose session holds `role`: 401 if
/// not signed in, 403 without the role, 503 if the store fails. Put it on a router of admin
/// routes; it needs a [`SessionLayer`](crate::SessionLayer) outside it.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use sessionward::{MemoryStore, SessionLayer, require_role};
///
/// let admin: Router = Router::new()
///     .route("/admin/stats", get(|| async { "stats" }))
///     .route_layer(require_role("admin"));
/// let app = Router::new().merge(admin).layer(SessionLayer::new(MemoryStore::new()));
/// # let _: Router = app;
/// ```
#[must_use]
pub fn require_role(role: &'static str) -> RequireRoleLayer {
    RequireRoleLayer {
        role: Some(Arc::from(role)),
    }
}

/// A route layer that lets through any signed-in user (401 otherwise; 503 if the store fails).
#[must_use]
pub fn require_auth() -> RequireRoleLayer {
    RequireRoleLayer { role: None }
}

/// The layer of [`require_role`] and [`require_auth`].
#[derive(Clone, Debug)]
pub struct RequireRoleLayer {
    role: Option<Arc<str>>,
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRoleService::new(inner, self.role.clone())
    }
}
