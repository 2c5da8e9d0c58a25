//! A Redis Cluster of the test's own: three primaries and three replicas of Debian's
//! `redis-server`, on free loopback ports below 55536 (the cluster bus is port + 10000), each
//! node under a temp folder, every process stopped by PID when dropped (even on a panic).
//!
//! Shared, as one source file, by the tests of `sessionward-redis` (`mod common`), the
//! end-to-end tests (`tests/tests/contract.rs`) and the benchmark harness
//! (`benches/src/cluster.rs`), each through `#[path]`: it lives here so that the packaged
//! `sessionward-redis` tests carry it. It depends on std and `sessionward-conformance` only.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

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
        // Below the kernel's ephemeral range (32768 and up) for the node and its bus port
        // (+ 10000), so that no outgoing connection takes a port between the check and the
        // bind; spread processes (parallel test binaries) over the range.
        let start = 20_000 + u16::try_from(std::process::id() % 25).unwrap_or(0) * 100;
        NEXT_PORT.store(start, Ordering::Relaxed);
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        if p >= 22_700 {
            NEXT_PORT.store(20_000, Ordering::Relaxed);
            continue;
        }
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
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "sessionward-redis-cluster-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for port in free_cluster_ports(6) {
            cluster.spawn(test, port);
        }
        let deadline = Instant::now() + FORM_TIMEOUT;
        for i in 0..cluster.nodes.len() {
            loop {
                let exited = cluster.nodes[i]
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited {
                    // Its port was taken after all: start it again on another one.
                    let port = free_cluster_ports(1)[0];
                    cluster.nodes[i].child = None;
                    cluster.nodes.remove(i);
                    cluster.spawn(test, port);
                    let node = cluster.nodes.pop().expect("node");
                    cluster.nodes.insert(i, node);
                }
                let port = cluster.nodes[i].port;
                if raw_command(port, "PING").is_ok_and(|r| r.starts_with("+PONG")) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{test}: node {port} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self::form(cluster, test, deadline)
    }

    fn spawn(&mut self, test: &str, port: u16) {
        {
            let node_dir = self.dir.join(port.to_string());
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
            self.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
    }

    fn form(cluster: Self, test: &str, deadline: Instant) -> Option<Self> {
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

    /// Waits until the cluster has failed over from the dead primary on `dead`: every running
    /// node flags it `fail` (agreed, not only suspected), sees three primaries that are not
    /// failed and hold slots (the replica promoted), and says `cluster_state:ok`; `false` if
    /// `within` passes first. Polls `CLUSTER NODES` and `CLUSTER INFO`, never sleeps blindly.
    pub fn wait_promoted(&self, dead: u16, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let agreed = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let ok = raw_command(n.port, "CLUSTER INFO")
                    .is_ok_and(|t| t.contains("cluster_state:ok"));
                let Ok(nodes) = raw_command(n.port, "CLUSTER NODES") else {
                    return false;
                };
                let mut dead_failed = false;
                let mut serving = 0;
                for line in nodes.lines() {
                    let f: Vec<&str> = line.split(' ').collect();
                    if f.len() < 8 {
                        continue;
                    }
                    let port: Option<u16> = f[1]
                        .split('@')
                        .next()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse().ok());
                    let flags: Vec<&str> = f[2].split(',').collect();
                    if port == Some(dead) {
                        dead_failed = flags.contains(&"fail");
                    } else if flags.contains(&"master")
                        && !flags.iter().any(|g| g.starts_with("fail"))
                        && f.len() > 8
                    {
                        serving += 1;
                    }
                }
                ok && dead_failed && serving == 3
            });
            if agreed {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
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
            let links_up = topo
                .iter()
                .filter(|(_, _, p, _)| !*p)
                .all(|(_, port, _, _)| {
                    raw_command(*port, "INFO replication")
                        .is_ok_and(|t| t.contains("master_link_status:up"))
                });
            let replicated = replicated && links_up;
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

/// Sends an inline command and reads the whole reply (bounded by a 2 s read timeout).
pub fn raw_command(port: u16, command: &str) -> std::io::Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_millis(300)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{command}\r\n").as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if reply_complete(&out) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !out.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no reply",
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Whether a simple or bulk reply has fully arrived.
fn reply_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    match text.as_bytes().first() {
        Some(b'+' | b'-' | b':') => text.ends_with("\r\n"),
        Some(b'$') => {
            let Some((len, rest)) = text[1..].split_once("\r\n") else {
                return false;
            };
            len.parse::<usize>().is_ok_and(|n| rest.len() >= n + 2)
        }
        _ => false,
    }
}
