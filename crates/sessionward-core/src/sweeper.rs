//! The background sweeper every store runs: a Tokio task that calls a store's
//! `delete_expired` on an interval, in batches, and stops when the store is dropped.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::error::StoreError;
use crate::record::Timestamp;

/// Whether a store's background sweeper is running. Stays valid after the store is dropped,
/// so a test can watch the sweeper stop.
#[derive(Clone, Debug, Default)]
pub struct SweeperStatus(Arc<AtomicBool>);

impl SweeperStatus {
    /// `true` while the sweeper task runs.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A running sweeper (or none). A store keeps it for as long as it lives: dropping it ends the
/// task at once.
pub struct Sweeper {
    status: SweeperStatus,
    _shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sweeper")
            .field("running", &self.status.is_running())
            .finish()
    }
}

/// How a store wants to be swept.
#[derive(Clone, Debug)]
pub struct SweepSettings {
    /// The store's name, for log lines.
    pub store: &'static str,
    /// How often; `None` for no sweeper.
    pub every: Option<Duration>,
    /// How many records one `delete_expired` call may delete (the sweeper loops until a call
    /// deletes fewer).
    pub batch: usize,
    /// The clock that says what "expired" means.
    pub clock: SharedClock,
}

impl Sweeper {
    /// Starts sweeping `target` with `sweep(target, now, batch)` on the current Tokio runtime.
    /// The task holds only a weak reference, so it never keeps the store alive. Without a
    /// runtime (or with `every: None`) nothing runs; the former logs a warning, since expired
    /// records would then stay until the application calls `delete_expired`.
    pub fn start<T, F, Fut>(target: &Arc<T>, settings: SweepSettings, sweep: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>, Timestamp, usize) -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, StoreError>> + Send + 'static,
    {
        let status = SweeperStatus::default();
        let Some(every) = settings.every else {
            return Self {
                status,
                _shutdown: None,
            };
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                store = settings.store,
                "session store built outside a Tokio runtime: no background sweeper; expired sessions are never loaded, but stay stored until delete_expired is called"
            );
            return Self {
                status,
                _shutdown: None,
            };
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        status.0.store(true, Ordering::SeqCst);
        runtime.spawn(run(
            Arc::downgrade(target),
            every.max(Duration::from_millis(1)),
            settings,
            sweep,
            rx,
            status.clone(),
        ));
        Self {
            status,
            _shutdown: Some(tx),
        }
    }

    /// The sweeper's state.
    #[must_use]
    pub fn status(&self) -> SweeperStatus {
        self.status.clone()
    }
}

async fn run<T, F, Fut>(
    target: Weak<T>,
    every: Duration,
    settings: SweepSettings,
    sweep: F,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
    status: SweeperStatus,
) where
    F: Fn(Arc<T>, Timestamp, usize) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    let batch = settings.batch.max(1);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let now = settings.clock.now();
        let mut total = 0;
        loop {
            let Some(store) = target.upgrade() else { break };
            match sweep(store, now, batch).await {
                Ok(n) => {
                    total += n;
                    if n < batch as u64 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(store = settings.store, error = %e, "session sweeper failed; retrying at the next tick");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::debug!(
                store = settings.store,
                deleted = total,
                "session sweeper deleted expired sessions"
            );
        }
    }
    status.0.store(false, Ordering::SeqCst);
}
