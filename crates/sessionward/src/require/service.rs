//! [`RequireRoleService`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::RequireRoleFuture;
use crate::session::Session;

/// The service of [`RequireRoleLayer`](super::RequireRoleLayer).
#[derive(Clone, Debug)]
pub struct RequireRoleService<S> {
    inner: S,
    role: Option<Arc<str>>,
}

impl<S> RequireRoleService<S> {
    pub(crate) fn new(inner: S, role: Option<Arc<str>>) -> Self {
        Self { inner, role }
    }

    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireRoleService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireRoleFuture<S, Request<ReqBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The readied instance goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let session = req.extensions().get::<Session>().cloned();
        match session {
            Some(session) => RequireRoleFuture::check(session, self.role.clone(), inner, req),
            None => RequireRoleFuture::missing_layer(),
        }
    }
}
