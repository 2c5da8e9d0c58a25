//! [`SessionService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::session::{Session, Shared};

/// The service [`SessionLayer`](crate::SessionLayer) wraps around an inner service.
///
/// It puts a [`Session`] into each request's extensions, so any tower service can use it
/// without axum: `req.extensions().get::<Session>()`.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

impl<S: fmt::Debug> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let session = Session::new(self.shared.clone(), req.headers());
        if session.presented_via_cookie()
            && let Some(guard) = &self.shared.config.cross_origin
            && guard.blocks(req.method(), req.uri(), req.headers())
        {
            tracing::warn!(target: "sessionward", event = "request.cross_origin_blocked", method = %req.method(), "cross-site request with an unsafe method and the session cookie refused");
            return ResponseFuture::ready(crate::error::json_response(
                http::StatusCode::FORBIDDEN,
                crate::guard::BLOCKED,
            ));
        }
        req.extensions_mut().insert(session.clone());
        // `poll_ready` readied `self.inner`; the future takes that instance and leaves a
        // fresh clone behind for the next request (the rule in tower-service's docs).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(inner.call(req), session)
    }
}
