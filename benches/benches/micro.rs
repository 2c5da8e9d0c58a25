//! Micro-benchmarks: token generate/parse/hash, and MemoryStore load/save/touch on 1 and 2
//! threads. Run with: `cargo bench -p sessionward-bench --bench micro`.
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sessionward_core::{
    ChangeSet, SessionHandle, SessionKey, SessionRecord, SessionStore, SessionToken, Timestamp,
};
use sessionward_memory::{MemoryStore, SweepConfig};

fn tokens(c: &mut Criterion) {
    let t = SessionToken::generate().expect("rng");
    let text = t.expose();
    c.bench_function("token/generate", |b| {
        b.iter(|| SessionToken::generate().expect("rng"));
    });
    c.bench_function("token/parse", |b| {
        b.iter(|| SessionToken::parse(black_box(&text)));
    });
    c.bench_function("token/hash", |b| b.iter(|| black_box(&t).key()));
    c.bench_function("token/parse_and_hash", |b| {
        b.iter(|| SessionToken::parse(black_box(&text)).map(|t| t.key()));
    });
}

const SESSIONS: usize = 100_000;

fn filled() -> (Arc<MemoryStore>, Vec<SessionKey>, Timestamp) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = Arc::new(
        MemoryStore::builder()
            .sweep(SweepConfig::disabled())
            .build(),
    );
    let now = Timestamp::from_unix(1_800_000_000);
    let mut keys = Vec::with_capacity(SESSIONS);
    rt.block_on(async {
        for i in 0..SESSIONS {
            let key = SessionToken::generate().expect("rng").key();
            let mut r = SessionRecord::new(
                key,
                SessionHandle::generate().expect("rng"),
                now,
                Duration::from_secs(1800),
                Duration::from_secs(43_200),
            );
            r.user = Some(format!("user-{i}").into());
            store.create(&r).await.expect("create");
            keys.push(key);
        }
    });
    (store, keys, now)
}

/// Runs `op` `iters` times on each of `threads` threads, round robin over the keys, and
/// returns the wall time (so 2 threads show the scaling of the sharded store).
fn timed<F>(threads: usize, iters: u64, keys: &Arc<Vec<SessionKey>>, op: F) -> Duration
where
    F: Fn(&SessionKey) + Send + Sync + Copy,
{
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let keys = keys.clone();
            s.spawn(move || {
                let mut i = t * 7919;
                for _ in 0..iters {
                    i = (i + 1) % keys.len();
                    op(&keys[i]);
                }
            });
        }
    });
    start.elapsed()
}

fn memory_store(c: &mut Criterion) {
    let (store, keys, now) = filled();
    let keys = Arc::new(keys);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let mut change = ChangeSet::default();
    change.data.insert("n", serde_json::json!(1));
    for threads in [1, 2] {
        let s = store.clone();
        c.bench_function(&format!("memory/load/{threads}t"), |b| {
            b.iter_custom(|iters| {
                timed(threads, iters, &keys, |k| {
                    let _ = futures_lite_block(s.load(k, now));
                })
            });
        });
        let s = store.clone();
        c.bench_function(&format!("memory/touch/{threads}t"), |b| {
            b.iter_custom(|iters| {
                timed(threads, iters, &keys, |k| {
                    let _ = futures_lite_block(s.touch(k, now));
                })
            });
        });
        let s = store.clone();
        let change = change.clone();
        c.bench_function(&format!("memory/save/{threads}t"), |b| {
            let change = &change;
            b.iter_custom(|iters| {
                timed(threads, iters, &keys, |k| {
                    let _ = futures_lite_block(s.save(k, Some(0), change, now));
                })
            });
        });
    }
}

/// Polls a future that never waits (MemoryStore's never do) to completion on this thread.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = tokens, memory_store
}
criterion_main!(benches);
