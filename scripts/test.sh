#!/usr/bin/env bash
# Runs every sessionward test: sets the machine up (scripts/setup.sh), then the whole
# workspace's tests, including the store suites against the local PostgreSQL, MariaDB and Redis (SQLite needs no server) and
# the end-to-end tests of the demo app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export MYSQL_URL="${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
# With the services set up, a test that needs one must run, not skip.
export SESSIONWARD_REQUIRE_SERVICES=1
exec cargo test --workspace "$@"
