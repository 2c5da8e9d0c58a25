//! The background sweeper every store runs: a Tokio task that calls a store's
//! `delete_expired` on an interval, in batches, and stops when the store is dropped.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
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

/// How a store is swept: every store builder takes one (`.sweep(SweepConfig::…)`), so the
/// three stores share these knobs and their defaults.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sessionward_core::{SweepConfig, TestClock};
///
/// // Every 5 minutes, 500 records per call, on a test clock.
/// let sweep = SweepConfig::every(Duration::from_secs(300))
///     .batch(500)
///     .clock(Arc::new(TestClock::starting_now()));
/// assert_eq!(sweep.interval(), Some(Duration::from_secs(300)));
/// assert_eq!(sweep.batch_size(), Some(500));
///
/// // No background task: call `delete_expired` yourself (e.g. from one job for a fleet).
/// assert_eq!(SweepConfig::disabled().interval(), None);
/// ```
#[derive(Clone, Debug)]
pub struct SweepConfig {
    interval: Option<Duration>,
    batch: Option<usize>,
    clock: SharedClock,
}

impl Default for SweepConfig {
    /// Every [`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL), in the store's own batch size, on
    /// the system clock.
    fn default() -> Self {
        Self::every(Self::DEFAULT_INTERVAL)
    }
}

impl SweepConfig {
    /// The default period: 60 s.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

    /// A sweeper that runs every `interval` (at least 1 ms), in the store's own batch size, on
    /// the system clock.
    #[must_use]
    pub fn every(interval: Duration) -> Self {
        Self {
            interval: Some(interval.max(Duration::from_millis(1))),
            batch: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// No background sweeper. Expired records are still never loaded, but they stay stored
    /// until something calls `delete_expired`.
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            interval: None,
            ..Self::default()
        }
    }

    /// How many records one `delete_expired` call may delete (at least 1); a pass repeats the
    /// call until one deletes fewer. Default: the store's own (documented by each store).
    #[must_use]
    pub fn batch(mut self, records: usize) -> Self {
        self.batch = Some(records.max(1));
        self
    }

    /// The clock that says what "expired" means to the sweeper. Default: the system clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The period, `None` when the sweeper is off.
    #[must_use]
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// The batch size, `None` for the store's own default.
    #[must_use]
    pub fn batch_size(&self) -> Option<usize> {
        self.batch
    }
}

impl Sweeper {
    /// Starts sweeping `target` with `sweep(target, now, batch)` on the current Tokio runtime,
    /// as `config` says; `store` names the store in log lines and `default_batch` is its batch
    /// size when `config` sets none. The task holds only a weak reference, so it never keeps
    /// the store alive. Without a runtime (or with [`SweepConfig::disabled`]) nothing runs; the
    /// former logs a warning, since expired records would then stay until the application
    /// calls `delete_expired`.
    pub fn start<T, F, Fut>(
        target: &Arc<T>,
        store: &'static str,
        default_batch: usize,
        config: SweepConfig,
        sweep: F,
    ) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>, Timestamp, usize) -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, StoreError>> + Send + 'static,
    {
        let status = SweeperStatus::default();
        let Some(every) = config.interval else {
            return Self {
                status,
                _shutdown: None,
            };
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                store,
                "session store built outside a Tokio runtime: no background sweeper; expired sessions are never loaded, but stay stored until delete_expired is called"
            );
            return Self {
                status,
                _shutdown: None,
            };
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        status.0.store(true, Ordering::SeqCst);
        let settings = Settings {
            store,
            batch: config.batch.unwrap_or(default_batch).max(1),
            clock: config.clock,
        };
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

/// What the running task needs of a [`SweepConfig`].
struct Settings {
    store: &'static str,
    batch: usize,
    clock: SharedClock,
}

async fn run<T, F, Fut>(
    target: Weak<T>,
    every: Duration,
    settings: Settings,
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
    let batch = settings.batch;
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
