//! [`RequireRoleFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::auth::signed_in;
use crate::events;
use crate::rejection::AuthRejection;
use crate::session::Session;

/// The check of one request: signed in, with the role if one is required.
type Check = Pin<Box<dyn Future<Output = Result<(), AuthRejection>> + Send>>;

pin_project! {
    /// The response future of [`RequireRoleService`](super::RequireRoleService): checks the
    /// session (one store round trip at most), then runs the inner service, or answers with
    /// the rejection.
    pub struct RequireRoleFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, F> {
        Checking {
            check: Check,
            inner: Option<(S, Req)>,
        },
        Inner {
            #[pin]
            future: F,
        },
        Rejected {
            rejection: Option<AuthRejection>,
        },
    }
}

impl<S: Service<Req>, Req> RequireRoleFuture<S, Req> {
    pub(crate) fn check(session: Session, role: Option<Arc<str>>, inner: S, req: Req) -> Self {
        let check = Box::pin(async move {
            let (_, roles) = signed_in(&session).await?;
            if let Some(role) = &role
                && !roles.contains(role)
            {
                events::denied(session.events(), role);
                return Err(AuthRejection::Forbidden);
            }
            Ok(())
        });
        Self {
            state: State::Checking {
                check,
                inner: Some((inner, req)),
            },
        }
    }

    pub(crate) fn missing_layer() -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(AuthRejection::MissingSessionLayer),
            },
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for RequireRoleFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRoleFuture").finish_non_exhaustive()
    }
}

impl<S, Req, B> Future for RequireRoleFuture<S, Req>
where
    S: Service<Req, Response = Response<B>>,
    B: Default + 'static,
{
    type Output = Result<Response<B>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, inner } => {
                    let passed = ready!(check.as_mut().poll(cx));
                    match (passed, inner.take()) {
                        (Ok(()), Some((mut service, req))) => {
                            let future = service.call(req);
                            this.state.set(State::Inner { future });
                        }
                        (Err(rejection), _) => {
                            return Poll::Ready(Ok(rejection.to_response()));
                        }
                        (Ok(()), None) => return Poll::Pending,
                    }
                }
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Rejected { rejection } => {
                    return match rejection.take() {
                        Some(r) => Poll::Ready(Ok(r.to_response())),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
