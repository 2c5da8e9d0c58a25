#!/usr/bin/env bash
# Prepares this machine for sessionward's tests: installs what is missing and makes sure the
# local PostgreSQL, MariaDB and Redis are up. Idempotent; safe to run before every test run.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Rust components the gates use.
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi

# Services the store tests talk to.
command -v pg_ctlcluster >/dev/null || apt_install postgresql
# redis-server and redis-cli (the Redis Cluster tests of sessionward-redis start their own
# six-node cluster and form it with `redis-cli --cluster create`); redis-tools ships redis-cli.
{ command -v redis-server >/dev/null && command -v redis-cli >/dev/null; } \
  || apt_install redis-server redis-tools
command -v mariadbd >/dev/null || apt_install mariadb-server
# Real browsers and a real reverse proxy for the end-to-end tests (tests/tests/browser.rs,
# engines.rs, proxy.rs): Chromium + chromedriver, WebKitGTK's WebKitWebDriver under Xvfb,
# Firefox ESR (driven over WebDriver BiDi by puppeteer-core: there is no geckodriver
# package) and nginx.
apt_install chromium chromium-driver firefox-esr webkit2gtk-driver xvfb nginx-light
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
# puppeteer-core, pinned by tests/js/package-lock.json; it never downloads a browser.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js_dir="$repo_root/tests/js"
if [ ! -d "$js_dir/node_modules/puppeteer-core" ] \
  || [ "$js_dir/package-lock.json" -nt "$js_dir/node_modules/.package-lock.json" ]; then
  log "installing the Firefox driver's npm packages (tests/js)"
  (cd "$js_dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { log "PostgreSQL is not reachable at 127.0.0.1:5432"; exit 1; }

# MariaDB for the MySQL store (root without a password over TCP, database `test`).
mariadb_up() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }
if ! mariadb_up; then
  log "starting MariaDB"
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- \
    --user=mysql --bind-address=127.0.0.1 --port=3306
  for _ in $(seq 1 60); do mariadb_up && break; sleep 1; done
fi
if ! mariadb_up; then
  # A fresh install lets root in only through the socket: allow it over TCP without a password.
  as_root mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" || true
fi
mariadb_up || { log "MariaDB is not reachable at 127.0.0.1:3306 as root"; exit 1; }
mariadb -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { log "Redis is not reachable at 127.0.0.1:6379"; exit 1; }
log "ready"
