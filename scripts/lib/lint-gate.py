"""Reads cargo's JSON messages on stdin, prints every compiler diagnostic, and fails if there
was any warning or error: the `-D warnings` of `cargo clippy`, for a build that compiles the
tests with clippy-driver as the workspace's rustc (see scripts/test)."""

import json
import sys

found = 0
for line in sys.stdin:
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        continue
    if message.get("reason") != "compiler-message":
        continue
    diagnostic = message["message"]
    if diagnostic.get("level") in ("warning", "error"):
        found += 1
        sys.stderr.write(diagnostic.get("rendered") or diagnostic.get("message", ""))
if found:
    sys.exit(f"lints: {found} warning(s) or error(s); the suite treats warnings as errors")
