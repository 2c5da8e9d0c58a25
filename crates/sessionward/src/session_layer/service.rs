//! [`SessionService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::USER_AGENT;
use http::{Request, Response};
use sessionward_core::SessionToken;
use tower_service::Service;

use super::future::ResponseFuture;
use crate::events;
use crate::presented;
use crate::session::Session;
use crate::shared::Shared;
use crate::sign_in::Client;

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

    crate::macros::inner_service_accessors!();
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        let presented = presented::presented(req.headers(), config);
        let client = config.client_addrs.resolve(req.extensions(), req.headers());
        let cx = events::Cx {
            limits: &config.events,
            client,
        };
        // The cross-origin check covers requests that carry the session cookie (SEC-36).
        if presented.via_cookie()
            && let Some(guard) = &config.cross_origin
            && guard.blocks(req.method(), req.uri(), req.headers())
        {
            events::cross_origin_blocked(cx, req.method(), true);
            return ResponseFuture::ready(crate::error::json_response(
                http::StatusCode::FORBIDDEN,
                crate::guard::BLOCKED,
            ));
        }
        // The guessing throttle (SEC-34): a blocked client's request that presents an ID it
        // was not seen valid with is refused before any store access.
        if let (Some(throttle), Some(c)) = (&config.guess_throttle, client)
            && presented.presents_id()
            && let Some(secs) = throttle.refuses(
                c,
                || presented.token().map(SessionToken::key),
                config.clock.now(),
            )
        {
            events::throttled(cx, secs);
            return ResponseFuture::ready(crate::throttle::too_many(secs));
        }
        if let Some(c) = client {
            req.extensions_mut().insert(c);
        }
        let kind = Client::of(req.method(), req.uri(), req.headers(), config);
        let user_agent = req.headers().get(USER_AGENT).cloned();
        let session = Session::new(self.shared.clone(), presented, user_agent, client);
        req.extensions_mut().insert(session.clone());
        // The instance `poll_ready` readied is called right here, before `call` returns, and
        // the future needs only what it returns: no clone of the inner service per request.
        ResponseFuture::new(self.inner.call(req), session, kind)
    }
}
