//! [`GuardFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// The response future of [`CrossOriginGuardService`](super::CrossOriginGuardService).
    pub struct GuardFuture<F, B> {
        #[pin]
        state: GuardState<F, B>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardState<F, B> {
        Inner { #[pin] future: F },
        Blocked { response: Option<Response<B>> },
    }
}

impl<F, B> GuardFuture<F, B> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: GuardState::Inner { future },
        }
    }

    pub(crate) fn blocked(response: Response<B>) -> Self {
        Self {
            state: GuardState::Blocked {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for GuardFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GuardFuture")
    }
}

impl<F, B, E> Future for GuardFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardProj::Inner { future } => Poll::Ready(ready!(future.poll(cx))),
            GuardProj::Blocked { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
        }
    }
}
