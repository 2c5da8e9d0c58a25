//! [`CrossOriginGuardService`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_service::Service;

use super::future::GuardFuture;
use super::rules::{BLOCKED, Rules};
use crate::error::json_response;
use crate::event_limit::EventLimiter;
use crate::events;

/// The service of [`CrossOriginGuard`](super::CrossOriginGuard).
#[derive(Clone, Debug)]
pub struct CrossOriginGuardService<S> {
    inner: S,
    guard: Rules,
    /// The guard's own event budget (it may run without a `SessionLayer`).
    events: Arc<EventLimiter>,
}

impl<S> CrossOriginGuardService<S> {
    pub(crate) fn new(inner: S, guard: Rules, events: Arc<EventLimiter>) -> Self {
        Self {
            inner,
            guard,
            events,
        }
    }

    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CrossOriginGuardService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.guard.blocks(req.method(), req.uri(), req.headers()) {
            let cx = events::Cx {
                limits: &self.events,
                client: req.extensions().get::<crate::ClientAddr>().copied(),
            };
            events::cross_origin_blocked(cx, req.method(), false);
            return GuardFuture::blocked(json_response(StatusCode::FORBIDDEN, BLOCKED));
        }
        GuardFuture::inner(self.inner.call(req))
    }
}
