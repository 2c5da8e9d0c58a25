//! "Run against this service or skip with a reason": the rule every test that needs
//! PostgreSQL, Redis or a browser follows.
//!
//! A test skips (prints why and passes) when its service is missing, unless
//! `SESSIONWARD_REQUIRE_SERVICES=1` (set by `scripts/test.sh` and CI), where a missing
//! service fails the test instead, so that CI never passes by skipping.

/// The variable that forbids skipping.
pub const REQUIRE_SERVICES: &str = "SESSIONWARD_REQUIRE_SERVICES";

/// Whether `SESSIONWARD_REQUIRE_SERVICES=1`: a missing service must fail the test.
#[must_use]
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).is_ok_and(|v| v == "1")
}

/// Skips `test` because of `reason` (printed on stderr) and returns `None`, or, when services
/// are required, panics with the reason.
///
/// # Panics
/// When `SESSIONWARD_REQUIRE_SERVICES=1`.
pub fn skip<T>(test: &str, reason: &str) -> Option<T> {
    assert!(
        !services_required(),
        "{test}: {reason}, and {REQUIRE_SERVICES}=1 forbids skipping"
    );
    eprintln!("{test}: SKIPPED: {reason}");
    None
}

/// The value of the environment variable `var` (a service URL such as `DATABASE_URL`), or a
/// [`skip`] of `test` when it is unset or empty.
///
/// # Panics
/// When the variable is missing and `SESSIONWARD_REQUIRE_SERVICES=1`.
#[must_use]
pub fn require_env(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => skip(test, &format!("{var} is not set")),
    }
}
