"""Run bench/run.py's workloads against settee and against pouchdb-server in one run; print ratios.

Usage: `.venv/bin/python bench/peer.py [--install-dir DIR] [--rounds N] [-- RUN.PY FLAGS...]`.
Installs the npm package `pouchdb-server` into a temporary folder (or `--install-dir`, reused
when it already holds it) with a bounded `npm install`, starts it in-memory on a free loopback
port, runs `bench/run.py --json` against it (`--url`) and against settee (started by run.py
itself), and prints each workload's figure on both with the ratio settee / pouchdb-server, plus
the peak RSS of the pouchdb-server process and of each settee worker. `--database-url` runs
settee on PostgreSQL instead of SQLite, in a fresh database created on that server for the run
and dropped after it (a database earlier runs left large is slower to write and page). If npm
is missing or the install fails or times out, it says so and exits 0 without measuring. The
target is settee >= 2x on every workload.

The two servers are measured in turns, `--rounds` times (default 3), each turn on a fresh
server and database: on a shared VM the bare stack's own rate moved by 2x within one run, so a
single pass of each, minutes apart, compares the machine's moods as much as the servers. Each
figure is the median of its rounds, the ratio is the ratio of those medians, and every round's
own ratio is printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Self

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
PACKAGE = "pouchdb-server@4"
GOAL = 2.0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server `url` names, for the block: its URL."""
    base, _, _ = url.rpartition("/")
    admin = base.replace("postgresql+psycopg://", "postgresql://", 1) + "/postgres"
    name = f"settee_peer_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install(folder: Path, timeout: float) -> Path | None:
    """The pouchdb-server executable in `folder`, installed there if needed; None on failure."""
    binary = folder / "node_modules" / ".bin" / "pouchdb-server"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _say("skipping the peer benchmark: node/npm not found")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    _say(f"npm install {PACKAGE} in {folder} (at most {timeout:g} s) ...")
    try:
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                               "--prefix", str(folder), PACKAGE], cwd=folder,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        _say(f"skipping the peer benchmark: npm install took more than {timeout:g} s")
        return None
    if done.returncode != 0 or not binary.exists():
        _say(f"skipping the peer benchmark: npm install failed ({done.returncode}):\n"
             + (done.stderr or done.stdout)[-2000:])
        return None
    return binary


class PouchServer:
    """pouchdb-server, in-memory, on a free loopback port, in its own process group."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_kb = 0
        self.log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.log = log = (self.workdir / "pouchdb-server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(self.binary), "--in-memory", "--no-stdout-logs", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pouchdb-server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("pouchdb-server did not answer within 30 s")

    def sample_rss(self) -> None:
        if self.proc is None:
            return
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))

    def __exit__(self, *exc: object) -> None:
        if self.log is not None:
            self.log.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.sample_rss()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def bench(extra: list[str], url: str | None) -> dict[str, Any]:
    """One `run.py --json` run (settee started by run.py when `url` is None)."""
    argv = [sys.executable, str(BENCH_DIR / "run.py"), "--json", *extra]
    if url:
        argv += ["--url", url]
    done = subprocess.run(argv, cwd=BENCH_DIR, stdout=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}")
    return dict(json.loads(done.stdout))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's shape from several: each workload's figure the median of the runs', its errors
    their sum, the peak RSS per worker the largest seen; and `rounds`, every run's figure."""
    out = dict(runs[0])
    out["results"] = []
    for row in runs[0]["results"]:
        rows = [r for run in runs for r in run["results"] if r["workload"] == row["workload"]]
        figures = [r["figure"] for r in rows]
        out["results"].append({**row, "figure": statistics.median(figures), "rounds": figures,
                               "errors": sum(r["errors"] for r in rows)})
    rss = [run.get("settee_worker_peak_rss_kb") or [] for run in runs]
    if any(rss):
        out["settee_worker_peak_rss_kb"] = max(rss, key=sum)
    return out


def report(settee: dict[str, Any], peer: dict[str, Any], peer_rss_kb: int) -> str:
    header = (f"{'workload':<24} {'unit':<8} {'settee':>12} {'pouchdb-server':>15} "
              f"{'ratio':>7}  goal {GOAL:g}x   each round")
    lines = [header, "-" * 96]
    peers = {r["workload"]: r for r in peer["results"]}
    short = 0
    for mine in settee["results"]:
        theirs = peers.get(mine["workload"])
        if theirs is None:
            continue
        ratio = mine["figure"] / theirs["figure"] if theirs["figure"] else float("inf")
        met = ratio >= GOAL
        short += not met
        rounds = " ".join(f"{a / b:.2f}x" if b else "inf"
                          for a, b in zip(mine.get("rounds", []), theirs.get("rounds", [])))
        errors = f"  (errors: settee {mine['errors']}, peer {theirs['errors']})" \
            if mine["errors"] or theirs["errors"] else ""
        lines.append(f"{mine['workload']:<24} {mine['unit']:<8} {mine['figure']:>12,.0f} "
                     f"{theirs['figure']:>15,.0f} {ratio:>6.2f}x  {'met' if met else 'MISSED':<7}"
                     f"  {rounds}{errors}")
    lines.append("")
    lines.append(f"settee: {settee['target_kind']}; gunicorn {settee['gunicorn']}; "
                 f"store {settee.get('store', 'SQLite')}")
    rss = settee.get("settee_worker_peak_rss_kb") or []
    if rss:
        lines.append(f"settee: peak RSS per worker "
                     f"{', '.join(f'{kb / 1024:.0f}' for kb in rss)} MiB "
                     f"({len(rss)} workers, {sum(rss) / 1024:.0f} MiB in all)")
    lines.append(f"pouchdb-server: {peer['target_kind']}; peak RSS "
                 f"{peer_rss_kb / 1024:.0f} MiB (one node process)")
    lines.append(f"goal met on {len(settee['results']) - short} of {len(settee['results'])} "
                 "workloads (figures: medians of the rounds)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install-dir", type=Path, default=None,
                        help="where to install pouchdb-server (reused); default a temp folder")
    parser.add_argument("--npm-timeout", type=float, default=300.0, metavar="S",
                        help="time limit of npm install")
    parser.add_argument("--database-url", default=None, metavar="URL",
                        help="run settee on PostgreSQL, in a fresh database created for the "
                        "run on the server this URL names; default: SQLite in a fresh temp dir")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="measure each server N times, in turns; figures are medians")
    parser.add_argument("run_args", nargs=argparse.REMAINDER,
                        help="flags for bench/run.py, after --")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    extra = [a for a in args.run_args if a != "--"]
    with tempfile.TemporaryDirectory(prefix="settee-peer-") as tmpdir:
        folder = args.install_dir or Path(tmpdir) / "npm"
        binary = install(folder, args.npm_timeout)
        if binary is None:
            return 0
        mine_runs: list[dict[str, Any]] = []
        their_runs: list[dict[str, Any]] = []
        peer_rss_kb = 0
        try:
            for n in range(1, args.rounds + 1):
                _say(f"== round {n} of {args.rounds}: settee ==")
                with contextlib.ExitStack() as stack:
                    if args.database_url:
                        url = stack.enter_context(fresh_database(args.database_url))
                        os.environ["SETTEE_DATABASE_URL"] = url  # run.py's gunicorn
                    mine_runs.append(bench(extra, None))
                _say(f"== round {n} of {args.rounds}: pouchdb-server ==")
                with PouchServer(binary, Path(tmpdir)) as peer:
                    _say(f"pouchdb-server in-memory at {peer.url}")
                    their_runs.append(bench(extra, peer.url))
                    peer.sample_rss()
                peer_rss_kb = max(peer_rss_kb, peer.peak_rss_kb)
        except (RuntimeError, OSError, ValueError, psycopg.Error) as exc:
            _say(f"peer bench failed: {exc}")
            return 1
    settee, theirs = median_run(mine_runs), median_run(their_runs)
    settee["store"] = "PostgreSQL" if args.database_url else "SQLite"
    print(report(settee, theirs, peer_rss_kb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
