//! A real nginx (Debian's `nginx-light`) in front of a demo app, terminating TLS with a
//! certificate the test hands it. Its config and files live in a temporary directory; it
//! runs in the foreground as one process (`master_process off`) in a process group of its
//! own, and is killed by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use sessionward_conformance::services;

use crate::{free_port, kill_process_group};

const NGINX: &str = "/usr/sbin/nginx";

/// How nginx sets the `Host` header it forwards (`proxy_set_header Host ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostHeader {
    /// `$proxy_host`, nginx's default: the upstream's `host:port`.
    ProxyHost,
    /// `$host`: the request's host name, without the port.
    Host,
    /// `$http_host`: the `Host` the browser sent, port included.
    HttpHost,
}

impl HostHeader {
    /// Every setting, for tests that try each.
    pub const ALL: [Self; 3] = [Self::ProxyHost, Self::Host, Self::HttpHost];

    /// The nginx variable.
    #[must_use]
    pub fn variable(self) -> &'static str {
        match self {
            Self::ProxyHost => "$proxy_host",
            Self::Host => "$host",
            Self::HttpHost => "$http_host",
        }
    }
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub base: String,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        kill_process_group(self.child.id());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &Path, port: u16, upstream: u16, host: HostHeader) -> String {
    let d = dir.display();
    // As root nginx would switch to `nobody`, who cannot read the temporary directory.
    let user = if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "{user}master_process off;
worker_processes 1;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost 127.0.0.1;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host {host};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
",
        host = host.variable(),
    )
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Nginx {
    /// Starts nginx on a free port, forwarding to `127.0.0.1:<upstream>` with `host`, serving
    /// `cert_pem` / `key_pem`; `None` (a printed reason) if nginx is not installed.
    ///
    /// # Panics
    /// If it is missing while `SESSIONWARD_REQUIRE_SERVICES=1`, or does not listen within
    /// 20 s.
    pub async fn start(
        upstream: u16,
        host: HostHeader,
        cert_pem: &str,
        key_pem: &str,
    ) -> Option<Self> {
        if !Path::new(NGINX).exists() {
            return services::skip(
                "nginx",
                "nginx missing (bash scripts/setup.sh, or apt-get install nginx-light)",
            );
        }
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sessionward-nginx-{}-{port}", std::process::id()));
        // `logs/` is where nginx writes before it has read `error_log` from the config.
        std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
        std::fs::write(dir.join("cert.pem"), cert_pem).expect("write cert");
        std::fs::write(dir.join("key.pem"), key_pem).expect("write key");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(&dir, port, upstream, host)).expect("write nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg(format!("daemon off; pid {}/nginx.pid;", dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        let mut n = Self {
            child,
            base: format!("https://127.0.0.1:{port}"),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(n);
            }
            if let Ok(Some(status)) = n.child.try_wait() {
                let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
