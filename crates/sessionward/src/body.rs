//! The bodies of the responses the layers answer with themselves (401, 403, 503, 500), for
//! any body type that is `Default`, the bound tower-http's middleware uses.

use std::any::Any;

/// `text` as a body of type `B`, for the body types that can hold it (axum's `Body`,
/// `String`); `None` for any other type, which then gets its empty `Default` body (the status
/// and headers still say what happened).
pub(crate) fn text<B: Default + 'static>(text: &'static str) -> Option<B> {
    let mut slot: Option<B> = None;
    let any: &mut dyn Any = &mut slot;
    if let Some(s) = any.downcast_mut::<Option<axum_core::body::Body>>() {
        *s = Some(axum_core::body::Body::from(text));
    } else if let Some(s) = any.downcast_mut::<Option<String>>() {
        *s = Some(text.to_owned());
    }
    slot
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_bodies_get_the_text_others_stay_empty() {
        assert_eq!(super::text::<String>("x").as_deref(), Some("x"));
        assert!(super::text::<axum_core::body::Body>("x").is_some());
        assert_eq!(super::text::<Vec<u8>>("x"), None);
    }
}
