//! The session middleware, laid out as tower-http lays out a middleware: the
//! [`SessionLayer`] builds a [`SessionService`] around the inner service, whose
//! [`ResponseFuture`] completes the session when the response comes back.

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::SessionLayer;
pub use self::service::SessionService;
