//! What a [`Session`](crate::Session) and the admin handle [`Sessions`](crate::Sessions)
//! share: the store and the configuration. A leaf: it imports neither.

use std::sync::Arc;

use sessionward_core::SessionStore;

use crate::config::SessionConfig;

/// What the layer shares between requests.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: SessionConfig,
}
