#!/usr/bin/env python3
"""Tests of scripts/msrv-check.py on fabricated `cargo metadata` output.

    python3 scripts/test_msrv_check.py
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "msrv-check.py")

spec = importlib.util.spec_from_file_location("msrv_check", SCRIPT)
msrv_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(msrv_check)


def package(name, rust_version):
    return {"id": f"{name} 1.0.0", "name": name, "version": "1.0.0", "rust_version": rust_version}


def dep(name, kind=None):
    return {"pkg": f"{name} 1.0.0", "dep_kinds": [{"kind": kind, "target": None}]}


def metadata(app_rust_version):
    """app -> lib (1.80) -> deep (1.88); app -build-> gen (1.70); app -dev-> tester (1.99)."""
    return {
        "workspace_members": ["app 1.0.0"],
        "packages": [
            package("app", app_rust_version),
            package("lib", "1.80"),
            package("deep", "1.88"),
            package("gen", "1.70"),
            package("tester", "1.99"),
            package("old", None),
        ],
        "resolve": {
            "nodes": [
                {
                    "id": "app 1.0.0",
                    "deps": [dep("lib"), dep("gen", "build"), dep("tester", "dev")],
                },
                {"id": "lib 1.0.0", "deps": [dep("deep"), dep("old")]},
                {"id": "deep 1.0.0", "deps": []},
                {"id": "gen 1.0.0", "deps": []},
                {"id": "tester 1.0.0", "deps": []},
                {"id": "old 1.0.0", "deps": []},
            ]
        },
    }


class MsrvCheck(unittest.TestCase):
    def test_fails_when_declared_below_a_transitive_dependency(self):
        problems, report = msrv_check.check(metadata("1.85"))
        self.assertEqual(len(problems), 1)
        self.assertIn("app: declares rust-version 1.85", problems[0])
        self.assertIn("need 1.88", problems[0])
        self.assertIn("deep 1.0.0 (rust-version 1.88)", problems[0])
        self.assertNotIn("lib", problems[0].split(":", 2)[2])
        self.assertEqual(report, [("app", "1.85", "1.88")])

    def test_passes_at_the_closure_minimum_and_ignores_dev_dependencies(self):
        problems, report = msrv_check.check(metadata("1.88"))
        self.assertEqual(problems, [])
        self.assertEqual(report, [("app", "1.88", "1.88")])

    def test_build_dependencies_count(self):
        meta = metadata("1.88")
        meta["packages"][3]["rust_version"] = "1.90"
        problems, _ = msrv_check.check(meta)
        self.assertEqual(len(problems), 1)
        self.assertIn("gen 1.0.0 (rust-version 1.90)", problems[0])

    def test_a_member_without_rust_version_fails(self):
        problems, _ = msrv_check.check(metadata(None))
        self.assertEqual(problems, ["app: declares no rust-version"])

    def test_patch_versions_compare_numerically(self):
        self.assertLess(msrv_check.parse_version("1.9"), msrv_check.parse_version("1.10"))
        self.assertEqual(msrv_check.parse_version("1.88"), (1, 88, 0))
        self.assertLess(msrv_check.parse_version("1.88"), msrv_check.parse_version("1.88.1"))

    def test_command_line_exit_status(self):
        for declared, status in (("1.85", 1), ("1.88", 0)):
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(metadata(declared), f)
            try:
                run = subprocess.run(
                    [sys.executable, SCRIPT, "--metadata", f.name],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            finally:
                os.unlink(f.name)
            self.assertEqual(run.returncode, status, run.stderr)
            if status:
                self.assertIn("deep 1.0.0", run.stderr)


if __name__ == "__main__":
    unittest.main()
