//! A Redis Cluster of the test's own: three primaries and three replicas of Debian's
//! `redis-server`, on free loopback ports below 55536 (the cluster bus is port + 10000), each
//! node under a temp folder, every process stopped by PID when dropped (even on a panic).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::{raw_command, unique};

/// How long the cluster may take to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(40);

/// Ports handed out in this process, so that tests running in parallel never pick the same.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);
static PICK: Mutex<()> = Mutex::new(());

/// `n` ports below 55536 that are free, and whose bus port (+ 10000) is free too.
fn free_cluster_ports(n: usize) -> Vec<u16> {
    let _guard = PICK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if NEXT_PORT.load(Ordering::Relaxed) == 0 {
        // Spread processes (parallel test binaries) over the range.
        let start = 20_000 + u16::try_from(std::process::id() % 200).unwrap_or(0) * 100;
        NEXT_PORT.store(start, Ordering::Relaxed);
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        assert!(p < 45_000, "ran out of cluster ports");
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(p) && free(p + 10_000) {
            out.push(p);
        }
    }
    out
}

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The cluster: six nodes; dropped, it kills them all.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

/// Whether the binary exists (`redis-server` or `redis-cli`).
fn have(binary: &str) -> bool {
    Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

impl RedisCluster {
    /// Starts and forms a cluster; `None` (after a `skip`) if `redis-server` or `redis-cli`
    /// is missing. Panics if the cluster does not form within its deadline.
    pub fn start(test: &str) -> Option<Self> {
        if !have("redis-server") || !have("redis-cli") {
            return sessionward_conformance::services::skip(
                test,
                "no `redis-server` / `redis-cli` binary on PATH (Debian: redis-server, redis-tools)",
            );
        }
        let dir = std::env::temp_dir().join(unique("sessionward-redis-cluster"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for port in free_cluster_ports(6) {
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                ])
                .arg(&node_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{test}: could not start redis-server: {e}"));
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let deadline = Instant::now() + FORM_TIMEOUT;
        for node in &cluster.nodes {
            while !raw_command(node.port, "PING").is_ok_and(|r| r.starts_with("+PONG")) {
                assert!(
                    Instant::now() < deadline,
                    "{test}: node {} did not start",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = create.spawn().expect("run redis-cli --cluster create");
        loop {
            match child.try_wait().expect("wait for redis-cli") {
                Some(status) => {
                    assert!(
                        status.success(),
                        "{test}: redis-cli --cluster create failed"
                    );
                    break;
                }
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{test}: redis-cli --cluster create hung");
                }
            }
        }
        assert!(
            cluster.wait_ok(deadline.saturating_duration_since(Instant::now())),
            "{test}: the cluster did not reach cluster_state:ok with its replicas in time"
        );
        Some(cluster)
    }

    /// The seed URLs, one per running node.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::url)
            .collect()
    }

    /// `CLUSTER NODES` as seen by a running node: (id, port, is primary, primary's id).
    pub fn topology(&self) -> Vec<(String, u16, bool, String)> {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let Ok(text) = raw_command(node.port, "CLUSTER NODES") else {
                continue;
            };
            let mut out = Vec::new();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() < 8 || f[2].contains("fail") {
                    continue;
                }
                let port = f[1]
                    .split('@')
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse().ok());
                if let Some(port) = port {
                    out.push((
                        f[0].to_owned(),
                        port,
                        f[2].contains("master"),
                        f[3].to_owned(),
                    ));
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }

    /// The ports of the primaries (that are not failed).
    pub fn primaries(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .topology()
            .into_iter()
            .filter(|(_, _, primary, _)| *primary)
            .map(|(_, port, _, _)| port)
            .collect();
        v.sort_unstable();
        v
    }

    /// The node id of the node on `port`.
    pub fn id_of(&self, port: u16) -> String {
        self.topology()
            .into_iter()
            .find(|(_, p, _, _)| *p == port)
            .map(|(id, ..)| id)
            .expect("node in the topology")
    }

    /// Kills the node on `port` by PID.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
    }

    /// Waits until every running node says `cluster_state:ok`, three primaries serve all
    /// slots and every primary has a replica; `false` if `within` passes first.
    pub fn wait_ok(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let all_ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                raw_command(n.port, "CLUSTER INFO").is_ok_and(|t| t.contains("cluster_state:ok"))
            });
            let topo = self.topology();
            let primaries: Vec<&String> = topo
                .iter()
                .filter(|(_, _, p, _)| *p)
                .map(|(id, ..)| id)
                .collect();
            let replicated = primaries.len() == 3
                && primaries
                    .iter()
                    .all(|id| topo.iter().any(|(_, _, p, of)| !*p && of == *id));
            let running = self.nodes.iter().filter(|n| n.is_running()).count();
            if all_ok && (replicated || running < 6) && primaries.len() == 3 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
