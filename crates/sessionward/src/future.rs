//! The response futures of the crate's services, in one place.

pub use crate::guard::GuardFuture;
pub use crate::require::RequireRoleFuture;
pub use crate::session_layer::ResponseFuture;
