"""Real JavaScript CouchDB clients (PouchDB 9, nano 10) for the wire tests: install and run them.

Not a test module: `test_npm_clients.py` imports it. The npm packages pinned by
`tests/js/package.json` and `tests/js/package-lock.json` are installed into `tests/js/node_modules`
once, with `npm ci`; a stamp file records the hash of the lockfile the install came from, so later
runs skip npm entirely until the lockfile changes. Without node or npm, or when the install fails
(no network, say), the tests are skipped with the reason, except under CI (`CI=true`), where that
is a test failure.

The scripts (`tests/js/*.mjs`) print one `STEP <name> ok|FAILED: ...|SKIPPED ...|KNOWN-BUG: ...`
line per step and exit non-zero when a step failed; `run_script` returns those lines parsed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

JS_DIR = Path(__file__).parent / "js"
NODE_MODULES = JS_DIR / "node_modules"
STAMP = NODE_MODULES / ".settee-install-stamp"
INSTALL_TIMEOUT = 300.0
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
STEP_LINE = re.compile(r"^STEP (\S+) (ok|FAILED|SKIPPED|KNOWN-BUG|UNEXPECTED-PASS)\b:? ?(.*)$")

_installed: bool = False


def _unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"npm clients unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"npm clients unavailable: {reason}")


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS_DIR / name).read_bytes())
    return digest.hexdigest()


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        _unavailable("`node` is not on PATH (install Node.js 18 or newer)")
    return node


def ensure_installed() -> None:
    """`npm ci` in `tests/js` unless `node_modules` already matches the lockfile."""
    global _installed
    if _installed:
        return
    node_binary()
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("`npm` is not on PATH")
    digest = _lock_digest()
    lock_path = Path(tempfile.gettempdir()) / (
        "settee-npm-" + hashlib.sha256(str(JS_DIR).encode()).hexdigest()[:16] + ".lock")
    with open(lock_path, "w") as lock:  # one installer at a time (xdist, parallel runs)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if STAMP.exists() and STAMP.read_text().strip() == digest:
            _installed = True
            return
        try:
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR,
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            _unavailable(f"`npm ci` in {JS_DIR} took more than {INSTALL_TIMEOUT:.0f} s")
        if proc.returncode != 0:
            _unavailable(f"`npm ci` in {JS_DIR} exited {proc.returncode}:\n"
                         f"{proc.stderr[-3000:]}{proc.stdout[-1000:]}")
        STAMP.write_text(digest + "\n")
        _installed = True


@dataclass
class ScriptRun:
    """One script's run: exit status, full output, and each step's outcome and message."""

    argv: list[str]
    returncode: int
    output: str
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)

    def report(self) -> str:
        return f"$ {' '.join(self.argv)}\n(exit {self.returncode})\n{self.output}"


def run_script(script: str, *args: str, timeout: float = 120.0) -> ScriptRun:
    """`node tests/js/SCRIPT ARGS...`, its `STEP` lines parsed."""
    ensure_installed()
    argv = [node_binary(), str(JS_DIR / script), *args]
    try:
        proc = subprocess.run(argv, cwd=JS_DIR, capture_output=True, text=True, timeout=timeout,
                              check=False)
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        returncode, output = -1, f"{text}\nTIMED OUT after {timeout:.0f} s"
    run = ScriptRun(argv, returncode, output)
    for line in output.splitlines():
        match = STEP_LINE.match(line)
        if match:
            run.steps[match.group(1)] = (match.group(2), match.group(3))
    return run
