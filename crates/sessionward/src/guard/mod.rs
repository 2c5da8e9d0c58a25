//! [`CrossOriginGuard`]: refuses unsafe methods that a browser sends cross-site (SEC-36).
//! The layer and its rules, the service, the future.

mod future;
mod layer;
mod rules;
mod service;

pub use self::future::GuardFuture;
pub use self::layer::CrossOriginGuard;
pub(crate) use self::rules::{BLOCKED, Origin};
pub use self::service::CrossOriginGuardService;
