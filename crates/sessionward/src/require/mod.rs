//! The route layers of [`require_role`] and [`require_auth`]: layer, service, future.

mod future;
mod layer;
mod service;

pub use self::future::RequireRoleFuture;
pub use self::layer::{RequireRoleLayer, require_auth, require_role};
pub use self::service::RequireRoleService;
