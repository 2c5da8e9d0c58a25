//! The HTTP server: hyper-util's HTTP/1 and HTTP/2 server with a Tokio timer, a cap on open
//! connections, an idle timeout and graceful shutdown.
//!
//! What keeps slow or idle clients from locking everyone out:
//!
//! - **Header-read timeout** (`--header-read-timeout`): hyper closes an HTTP/1 connection
//!   whose request head is not complete in time (slow-headers attacks), and
//!   `--max-header-bytes` bounds the memory one unfinished head can hold.
//! - **Idle timeout** (`--keep-alive-timeout`): a connection with no request in flight for that
//!   long is closed, on HTTP/1 and HTTP/2 alike, including one that never sent a byte.
//! - **Connection cap** (`--max-connections`): at most that many connections are served at
//!   once. A connection accepted past the cap makes the server close the connection that has
//!   been idle the longest (no request in flight: nothing is lost, a client reconnects); if none
//!   is idle, the new connection waits, and further ones wait in the kernel's backlog, until a
//!   connection ends. Connections with a request in flight are never closed for it. So a flood of
//!   idle connections from one client cannot starve another: each new connection displaces the
//!   flood's oldest, and a client that sends its request at once is served.
//!
//! Over TLS (`--tls-cert`/`--tls-key` or `--self-signed`, see [`crate::tls`]) the same
//! limits hold: a connection takes its slot before the handshake, and a handshake that is not
//! done within the header-read timeout closes the connection.
//!
//! Keep `--max-connections` well below the process's descriptor limit (`ulimit -n`): each
//! connection is one descriptor, and the store's pool needs some too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// The server's limits (from the command line).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Time allowed for a request head (HTTP/1).
    pub(crate) header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub(crate) keep_alive_timeout: Duration,
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// Largest request head, in bytes (HTTP/1 read buffer; HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests before closing their connections.
    pub(crate) shutdown_timeout: Duration,
}

/// One open connection, as the cap and the idle timeout see it.
struct Conn {
    /// Requests whose response has not been fully written.
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    /// Set when the cap asked this connection to close.
    evicting: AtomicBool,
    evict: Notify,
    epoch: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// How long it has been idle (zero while a request is in flight).
    fn idle_for(&self) -> Duration {
        if !self.is_idle() {
            return Duration::ZERO;
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on a connection; dropped when its response body is written or dropped.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, to pick one to close when the cap is reached.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn register(&self, epoch: Instant) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            epoch,
        });
        conn.idle_since_ms.store(conn.now_ms(), Ordering::Release);
        self.lock().insert(id, Arc::clone(&conn));
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the connection idle the longest to close; `false` if none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let conns = self.lock();
        let oldest = conns
            .values()
            .filter(|c| c.is_idle() && !c.evicting.load(Ordering::Acquire))
            .max_by_key(|c| c.idle_for());
        match oldest {
            Some(c) => {
                c.evicting.store(true, Ordering::Release);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Drops the connection's registry entry when its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// A response body that keeps its request counted as in flight until it is written.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The app as one connection serves it: the peer address for [`ConnectInfo`], and request
/// tracking for the idle timeout and the cap.
#[derive(Clone)]
struct ConnService {
    app: Router,
    conn: Arc<Conn>,
    peer: SocketAddr,
}

impl tower::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = self.conn.begin();
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let res = app.oneshot(req).await?;
            Ok(res.map(|inner| {
                Body::new(TrackedBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(limits.keep_alive_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Waits for a connection slot, closing the longest-idle connection to free one.
async fn acquire_slot(slots: &Arc<Semaphore>, registry: &Registry) -> OwnedSemaphorePermit {
    loop {
        if let Ok(p) = Arc::clone(slots).try_acquire_owned() {
            return p;
        }
        let evicted = registry.evict_oldest_idle();
        let wait = if evicted {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(50)
        };
        if let Ok(Ok(p)) = tokio::time::timeout(wait, Arc::clone(slots).acquire_owned()).await {
            return p;
        }
    }
}

/// Serves `conn` (the connection of `state`) until it ends, is idle too long, or is evicted.
async fn drive<F: Future>(conn: F, state: &Conn, keep_alive: Duration) {
    tokio::pin!(conn);
    loop {
        let left = keep_alive.saturating_sub(state.idle_for());
        tokio::select! {
            _ = &mut conn => return,
            () = state.evict.notified() => {
                if state.is_idle() {
                    tracing::debug!("closing the longest-idle connection: connection cap reached");
                    return;
                }
                state.evicting.store(false, Ordering::Release);
            }
            () = tokio::time::sleep(left) => {
                if state.is_idle() && state.idle_for() >= keep_alive {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (at most `limits.shutdown_timeout`). With `tls`, every connection is TLS.
pub(crate) async fn serve(
    listener: TcpListener,
    app: &Router,
    limits: &Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let graceful = GracefulShutdown::new();
    let epoch = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or an aborted handshake: back off a little, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = tokio::select! {
            p = acquire_slot(&slots, &registry) => p,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (id, state) = registry.register(epoch);
        let registered = Registered {
            registry: Arc::clone(&registry),
            id,
        };
        let service = ConnService {
            app: app.clone(),
            conn: Arc::clone(&state),
            peer,
        };
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let keep_alive = limits.keep_alive_timeout;
        let tls = tls.clone();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _registered = registered;
            let service = TowerToHyperService::new(service);
            let Some(tls) = tls else {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                drive(watcher.watch(conn.into_owned()), &state, keep_alive).await;
                return;
            };
            let stream = match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            drive(watcher.watch(conn.into_owned()), &state, keep_alive).await;
        });
    }
    drop(listener);
    tracing::info!("waiting for in-flight requests");
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout: closing the remaining connections");
    }
}
