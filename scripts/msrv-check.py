#!/usr/bin/env python3
"""Checks each workspace crate's declared rust-version against its dependency closure.

For every workspace member, walks the locked dependency graph from `cargo metadata` through
normal and build dependencies (the member's own dev-dependencies are not part of what a user
compiles) and fails when any package in that closure declares a `rust-version` newer than the
member's. Packages that declare no `rust-version` cannot be checked and are listed.

    python3 scripts/msrv-check.py                  # runs `cargo metadata --locked`
    python3 scripts/msrv-check.py --metadata m.json  # a saved `cargo metadata` output
    python3 scripts/msrv-check.py --print          # also print each crate's computed minimum

Exit status: 0 when every member's rust-version is at least its closure's, 1 otherwise.
"""

import argparse
import json
import subprocess
import sys


def parse_version(text):
    """'1.85' or '1.85.1' as a comparable tuple (1, 85, 1)."""
    parts = [int(p) for p in text.split(".")]
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def show(version):
    return ".".join(str(p) for p in version).removesuffix(".0")


def closure(root, nodes):
    """The ids reachable from `root` through normal and build dependencies."""
    seen = {root}
    stack = [root]
    while stack:
        node = nodes[stack.pop()]
        for dep in node.get("deps", []):
            kinds = [k.get("kind") for k in dep.get("dep_kinds", [])]
            if not any(kind in (None, "build") for kind in kinds):
                continue
            if dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
    return seen


def check(metadata):
    """Returns (problems, report): report rows are (member, declared, needed, culprits)."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    problems = []
    report = []
    for member in metadata["workspace_members"]:
        pkg = packages[member]
        declared = pkg.get("rust_version")
        if declared is None:
            problems.append(f"{pkg['name']}: declares no rust-version")
            continue
        declared_v = parse_version(declared)
        needed = (0, 0, 0)
        culprits = []
        for dep_id in closure(member, nodes):
            dep = packages[dep_id]
            rv = dep.get("rust_version")
            if rv is None:
                continue
            rv_v = parse_version(rv)
            needed = max(needed, rv_v)
            if rv_v > declared_v:
                culprits.append(f"{dep['name']} {dep['version']} (rust-version {rv})")
        if culprits:
            problems.append(
                f"{pkg['name']}: declares rust-version {declared}, but its dependencies "
                f"need {show(needed)}: " + ", ".join(sorted(culprits))
            )
        report.append((pkg["name"], declared, show(needed)))
    return problems, report


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata", help="a saved `cargo metadata --format-version 1` JSON")
    parser.add_argument("--print", action="store_true", help="print each crate's minimum")
    args = parser.parse_args(argv)
    if args.metadata:
        with open(args.metadata, encoding="utf-8") as f:
            metadata = json.load(f)
    else:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
        metadata = json.loads(out)
    problems, report = check(metadata)
    if args.print:
        for name, declared, needed in sorted(report):
            print(f"{name}: declared {declared}, closure needs {needed}")
    for problem in problems:
        print(f"msrv-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"msrv-check: {len(report)} crates declare a rust-version their dependencies allow")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
