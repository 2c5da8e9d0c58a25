//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::session::{Finish, Session};
use crate::sign_in::Client;

pin_project! {
    /// The response future of [`SessionService`](crate::SessionService).
    ///
    /// [`SessionLayer`](crate::SessionLayer) -> [`SessionService`](crate::SessionService) ->
    /// this future -> the session's plan, commit and response.
    ///
    /// It polls the inner service's future, then completes the session. When there is nothing
    /// to write (the route never used the session, or only read it) that happens in place,
    /// with no allocation; store writes run in a boxed future.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
            session: Option<Session>,
            client: Client,
        },
        Finishing {
            future: Pin<Box<dyn Future<Output = Response<B>> + Send>>,
        },
        Ready {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    /// A response decided before the inner service was called.
    pub(crate) fn ready(response: Response<B>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn new(future: F, session: Session, client: Client) -> Self {
        Self {
            state: State::Inner {
                future,
                session: Some(session),
                client,
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner {
                    future,
                    session,
                    client,
                } => {
                    let res = ready!(future.poll(cx))?;
                    let Some(session) = session.take() else {
                        return Poll::Ready(Ok(res));
                    };
                    // A 401 of the extractors or route layers, answered for the kind of client.
                    let res = crate::sign_in::answer(res, client, &session.shared().config);
                    match session.finish(res) {
                        Finish::Done(res) => return Poll::Ready(Ok(res)),
                        Finish::Pending(future) => {
                            this.state.set(State::Finishing { future });
                        }
                    }
                }
                StateProj::Finishing { future } => {
                    return Poll::Ready(Ok(ready!(future.as_mut().poll(cx))));
                }
                StateProj::Ready { response } => {
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
