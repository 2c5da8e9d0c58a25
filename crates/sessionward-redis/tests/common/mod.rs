//! Helpers shared by the integration tests: the environment rules and a `redis-server` of the
//! test's own.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;

pub use cluster::raw_command;

/// A unique suffix for names (namespaces, temp dirs) of this run.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{tag}-{}-{nanos:x}", std::process::id())
}

/// A `redis-server` started for one test on a free port, in a temp dir, without persistence.
/// Killed (and its dir removed) when dropped, whatever the test did.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl RedisServer {
    /// Starts a server; `None` (after a `skip`) if there is no `redis-server` binary.
    pub fn start(test: &str) -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("sessionward-redis-test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        match server.launch() {
            Ok(true) => Some(server),
            Ok(false) => panic!("{test}: redis-server on port {port} did not answer PING"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                sessionward_conformance::services::skip(test, "no `redis-server` binary on PATH")
            }
            Err(e) => panic!("{test}: could not start redis-server: {e}"),
        }
    }

    /// Spawns the server and waits until it answers; `Ok(false)` if it did not in time.
    fn launch(&mut self) -> std::io::Result<bool> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        if self.wait_ready(START_TIMEOUT) {
            Ok(true)
        } else {
            self.kill();
            Ok(false)
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL: no goodbye on the socket beyond the kernel's reset).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.kill();
        // The port may linger briefly; retry the start for a bounded time.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(true) => return,
                Ok(false) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => panic!("could not restart redis-server: {other:?}"),
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("server running");
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// Polls PING until the server answers or `within` passes.
    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false; // exited (e.g. port in use)
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Runs one command on a fresh connection and returns the raw reply text.
    pub fn raw(&self, command: &str) -> String {
        raw_command(self.port, command).expect("raw command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // A paused server must be thawed for a clean exit; SIGKILL works either way.
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn ping(port: u16) -> bool {
    raw_command(port, "PING").is_ok_and(|r| r.starts_with("+PONG"))
}

/// Parses `INFO commandstats` text into (command, calls).
pub fn command_calls(info: &str) -> std::collections::BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}
