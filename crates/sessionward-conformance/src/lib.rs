//! The conformance suite every sessionward store must pass.
//!
//! [`run_all`] runs every case against fresh stores from a factory and panics with the names
//! of the cases that failed (each failure says what it expected and what it got). A store
//! crate calls it from one test:
//!
//! ```no_run
//! use std::sync::Arc;
//! use sessionward_core::SessionStore;
//!
//! // In a store crate: `#[tokio::test(flavor = "multi_thread")] async fn conformance()`.
//! async fn conformance(make_store: impl Fn() -> Arc<dyn SessionStore>) {
//!     sessionward_conformance::run_all(|| {
//!         let store = make_store();
//!         async move { store }
//!     })
//!     .await;
//! }
//! ```
//!
//! The factory is called once per case, so each case starts from an empty store (a
//! database-backed store can hand out a fresh schema or key prefix each time).
//!
//! # A kit for a store's own tests
//!
//! - [`fixtures`]: the records, keys and users the suite builds, for a store's own tests.
//! - [`ForwardingStore`]: wraps any store and asks a [`Hook`] before every call, to count
//!   calls or fail them ([`CallLog`]) or to break a store on purpose.
//! - [`stale_rows`]: the epoch rules on rows the API cannot make, for SQL-like stores' tests.
//! - [`services`]: "run against this service or skip with a reason", with
//!   `SESSIONWARD_REQUIRE_SERVICES=1` turning every skip into a failure.
#![forbid(unsafe_code)]

mod cases;
pub mod fixtures;
mod forwarding;
mod immediate;
pub mod services;
pub mod stale_rows;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{SessionStore, StoreError};

pub use cases::CASES;
pub use forwarding::{Call, CallLog, ForwardingStore, Hook};
pub use immediate::ThroughImmediate;

/// Why a case failed.
#[derive(Debug)]
pub struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Failure {
    /// A failure with a message.
    #[must_use]
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let mut msg = format!("unexpected store error: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        Self(msg)
    }
}

/// The result of one case.
pub type CaseResult = Result<(), Failure>;

/// A boxed case future.
pub type CaseFuture = std::pin::Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One named case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name, reported when it fails.
    pub name: &'static str,
    /// Runs the case against a fresh store.
    pub run: fn(Arc<dyn SessionStore>) -> CaseFuture,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// How long one case may take before it counts as hung.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every case in [`CASES`], each on a fresh store from `factory`, and panics listing the
/// cases that failed, panicked or hung. Needs a Tokio runtime (cases spawn tasks to race
/// operations; a multi-threaded runtime makes the races real).
///
/// # Panics
/// If any case fails.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SessionStore>>,
{
    let report = run_cases(CASES, factory).await;
    assert!(
        report.failed.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        report.failed.len(),
        report.total,
        report
            .failed
            .iter()
            .map(|(name, why)| format!("  - {name}: {why}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("conformance: {} cases passed", report.total);
}

/// The outcome of [`run_cases`].
#[derive(Debug, Default)]
pub struct Report {
    /// How many cases ran.
    pub total: usize,
    /// The cases that failed, with why.
    pub failed: Vec<(&'static str, String)>,
}

/// Runs the given cases and reports, without panicking.
pub async fn run_cases<F, Fut>(cases: &[Case], factory: F) -> Report
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SessionStore>>,
{
    let mut report = Report::default();
    for case in cases {
        report.total += 1;
        let store = factory().await;
        // A store with an immediate face runs the case through it too, on a fresh store.
        let immediate = store.immediate().is_some();
        let mut why = run_case(case, store).await.err();
        if why.is_none() && immediate {
            let through: Arc<dyn SessionStore> = Arc::new(ThroughImmediate::new(factory().await));
            why = run_case(case, through)
                .await
                .err()
                .map(|w| format!("through the immediate face: {w}"));
        }
        if let Some(why) = why {
            eprintln!("conformance case {} FAILED: {why}", case.name);
            report.failed.push((case.name, why));
        }
    }
    report
}

/// Runs one case on `store`: why it failed, if it did.
async fn run_case(case: &Case, store: Arc<dyn SessionStore>) -> Result<(), String> {
    let task = tokio::spawn((case.run)(store));
    match tokio::time::timeout(CASE_TIMEOUT, task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(failure))) => Err(failure.0),
        Ok(Err(join)) if join.is_panic() => Err("panicked".to_owned()),
        Ok(Err(join)) => Err(format!("task failed: {join}")),
        Err(_) => Err(format!("did not finish within {CASE_TIMEOUT:?}")),
    }
}
