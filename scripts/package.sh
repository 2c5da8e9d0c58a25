#!/usr/bin/env bash
# Packages every publishable crate as `cargo publish` would, before any of them is on
# crates.io, and checks what a user downloads:
#   1. each package lists LICENSE-MIT, LICENSE-APACHE and its README;
#   2. `cargo package --workspace` builds every package from its own tarball, in dependency
#      order (cargo 1.84+ resolves the workspace's other crates from their fresh tarballs);
#   3. the packaged tests build: the tarballs, unpacked into one throwaway workspace that
#      resolves sessionward's crates to each other's unpacked sources, compile their tests
#      and examples (`cargo test --no-run`) against the repository's locked versions, offline.
# Publishing needs nothing more than `cargo publish -p X` in the order printed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# Dependency order (dev-dependencies included: the stores' tests use the conformance suite).
crates=(sessionward-core sessionward-conformance sessionward-memory sessionward sessionward-postgres
  sessionward-redis sessionward-sqlite sessionward-mysql)

for c in "${crates[@]}"; do
  list=$(cargo package --list --locked --allow-dirty -p "$c")
  for f in LICENSE-MIT LICENSE-APACHE README.md Cargo.toml; do
    grep -qx "$f" <<<"$list" || { echo "package: $c does not package $f" >&2; exit 1; }
  done
done
echo "package: every crate packages LICENSE-MIT, LICENSE-APACHE and README.md"

# cargo unpacks the packaged workspace crates into an overlay source cache
# ($CARGO_HOME/registry/src/-<hash>/) and never refreshes an unpacked crate of the same version,
# so a tarball made by an earlier run would be verified in place of today's. Those folders hold
# only our own crates (crates.io's live under registry/src/index.crates.io-*).
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/sessionward-*
# For the same reason (a registry crate of a given version is taken to never change), the
# target folder's build of a packaged crate from an earlier run would count as fresh: forget
# every build of our crates there, so verification compiles today's tarballs.
rm -rf "$CARGO_TARGET_DIR"/*/.fingerprint/sessionward-*

args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
cargo package --locked --allow-dirty "${args[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(cargo metadata --locked --no-deps --format-version 1 | python3 -c '
import json, sys
packages = json.load(sys.stdin)["packages"]
print(next(p["version"] for p in packages if p["name"] == "sessionward"))')
{
  echo '[workspace]'
  echo 'resolver = "3"'
  printf 'members = [%s]\n' "$(printf '"%s", ' "${crates[@]}")"
  echo '[patch.crates-io]'
  for c in "${crates[@]}"; do echo "$c = { path = \"$c\" }"; done
} >"$work/Cargo.toml"
for c in "${crates[@]}"; do
  tar -xzf "$CARGO_TARGET_DIR/package/$c-$version.crate" -C "$work"
  mv "$work/$c-$version" "$work/$c"
done
cp Cargo.lock "$work/Cargo.lock"
(cd "$work" && cargo test --offline --workspace --all-targets --no-run)
echo "package: ${#crates[@]} crates packaged; their tests build from the tarballs"
echo "package: publish in this order: ${crates[*]}"
