"""Benchmark settee or any CouchDB-compatible server against a hello-world ceiling of the same run.

Usage: `make bench` (starts settee itself), or `.venv/bin/python bench/run.py --url http://host:5984`.
Against the target it measures `_bulk_docs` (which also loads the db), GET by random id, `_all_docs`
paging and single-doc PUT, each stopping at its count or its time limit, whichever comes first.
Before the first and after each of them it measures GET requests/s of a werkzeug hello-world app
(`hello.py`) under gunicorn with the same worker class, workers and threads settee gets, and each
figure is printed with its ratio to the hello-world runs on either side of it. Speed goals are read
off those ratios, never asserted as times in tests. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import database
import orjson
from http1 import Connection, Target
from loadgen import ClientSettings, LoadError, Measurement, Workload, measure
from report import Result, RunInfo, as_json, table
from serve import SETTEE_WORKER, Gunicorn, GunicornSettings, StartError
from workloads import AllDocsPages, BulkDocs, GetRandom, HelloGet, PutDocs

BENCH_DIR = Path(__file__).resolve().parent


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's line breaks; show every default."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_Formatter)
    p.add_argument("--url", help="CouchDB-compatible base URL, basic auth allowed "
                   "(http://user:pass@host:5984); default: start settee under gunicorn on a free "
                   "port with a fresh data dir")
    p.add_argument("--db", default="settee-bench", help="database to use")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    server = p.add_argument_group("gunicorn (hello-world ceiling, and settee when started here)")
    server.add_argument("--worker-class", default=SETTEE_WORKER, metavar="NAME",
                        help="gunicorn's (default: what `settee serve` runs)")
    server.add_argument("--workers", type=_count, default=2, metavar="N", help="gunicorn's")
    server.add_argument("--threads", type=_count, default=4, metavar="N", help="gunicorn's")
    server.add_argument("--startup-timeout", type=_seconds, default=30.0, metavar="S",
                        help="until every worker is up and the ready check answers")
    client = p.add_argument_group("client")
    client.add_argument("--clients", type=_count, default=8, metavar="N",
                        help="connections for hello, PUT and GET")
    client.add_argument("--client-procs", type=_count, default=2, metavar="N",
                        help="client processes to deal connections over")
    client.add_argument("--timeout", type=_seconds, default=60.0, metavar="S", help="per request")
    sizes = p.add_argument_group("sizes (each workload stops at its count or its time limit)")
    sizes.add_argument("--duration", type=_seconds, default=10.0, metavar="S",
                       help="time limit of PUT, GET and _all_docs")
    sizes.add_argument("--hello-duration", type=_seconds, default=3.0, metavar="S",
                       help="time limit of each hello-world run")
    sizes.add_argument("--requests", type=_count, default=500_000, metavar="N",
                       help="count limit of hello and GET")
    sizes.add_argument("--puts", type=_count, default=50_000, metavar="N",
                       help="count limit of PUT")
    sizes.add_argument("--docs", type=_count, default=50_000, metavar="N",
                       help="count limit of _bulk_docs: the docs that GET and _all_docs then read")
    sizes.add_argument("--batch", type=_count, default=1000, metavar="N",
                       help="docs per _bulk_docs request")
    sizes.add_argument("--bulk-clients", type=_count, default=2, metavar="N",
                       help="connections for _bulk_docs")
    sizes.add_argument("--bulk-duration", type=_seconds, default=30.0, metavar="S",
                       help="time limit of _bulk_docs")
    sizes.add_argument("--page-limit", type=_count, default=1000, metavar="N",
                       help="rows per _all_docs page")
    sizes.add_argument("--page-clients", type=_count, default=2, metavar="N",
                       help="connections for _all_docs, each paging on its own")
    sizes.add_argument("--rows", type=_count, default=2_000_000, metavar="N",
                       help="count limit of _all_docs rows")
    sizes.add_argument("--doc-bytes", type=_count, default=100, metavar="N",
                       help="JSON size of each doc")
    sizes.add_argument("--seed", type=int, default=0, help="for the random ids GET reads")
    return p.parse_args(argv)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _welcome(target: Target) -> str:
    """What the server says about itself at GET /."""
    conn = Connection(target, timeout=10)
    try:
        response = conn.request("GET", "/")
        info = orjson.loads(response.body) if response.status == 200 else {}
    except (OSError, orjson.JSONDecodeError):
        info = {}
    finally:
        conn.close()
    if not isinstance(info, dict):
        return "?"
    vendor = info.get("vendor")
    name = vendor.get("name") if isinstance(vendor, dict) else None
    return " ".join(str(x) for x in (name or info.get("couchdb"), info.get("version")) if x) or "?"


@contextlib.contextmanager
def _target(
    args: argparse.Namespace, settings: GunicornSettings, tmp: Path
) -> Iterator[tuple[Target, str, Gunicorn | None]]:
    """The given URL, or settee started here for the length of the block."""
    if args.url:
        target = Target.parse(args.url)
        yield target, f"given URL; GET / says {_welcome(target)}", None
        return
    data = tmp / "settee-data"
    data.mkdir()
    server = Gunicorn(
        "settee.server:create_app()",
        settings,
        log=tmp / "settee.log",
        ready_path="/_up",
        env={"SETTEE_DATA_DIR": str(data)},
        startup_timeout=args.startup_timeout,
    )
    _say(f"starting settee: {' '.join(server.command())}")
    with server:
        says = _welcome(server.target)
        kind = f"settee started here, data in a fresh temp dir; GET / says {says}"
        yield server.target, kind, server


class Bench:
    """One benchmark run: the settings from the command line, and the steps that use them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.gunicorn = GunicornSettings(args.worker_class, args.workers, args.threads)
        self.client = ClientSettings(procs=args.client_procs, timeout=args.timeout)
        self.tag = secrets.token_hex(3)  # in every doc id, so runs never collide
        self.hello = Target("127.0.0.1", 0)  # set once the hello-world app runs
        self.hellos: list[Measurement] = []

    def run(self) -> str:
        """Start the servers, measure, stop them; return the report."""
        args = self.args
        with tempfile.TemporaryDirectory(prefix="settee-bench-") as tmpdir:
            tmp = Path(tmpdir)
            hello = Gunicorn("hello:app", self.gunicorn, log=tmp / "hello.log",
                             pythonpath=BENCH_DIR, startup_timeout=args.startup_timeout)
            _say(f"starting the hello-world ceiling: {' '.join(hello.command())}")
            with hello, _target(args, self.gunicorn, tmp) as (target, kind, settee):
                self.hello = hello.target
                created = database.create(target, args.db)
                try:
                    results = self.workloads(target)
                    rss = worker_rss_kb(target.port) if settee is not None else []
                finally:
                    if created:
                        database.delete(target, args.db)
                if settee is not None and any(r.measurement.errors for r in results):
                    _say(f"settee had errors; the end of its log:\n{settee.log_tail()}")
        wrk = "; wrk found but not used" if shutil.which("wrk") else ""
        client = (f"pure Python, raw-socket HTTP/1.1 keep-alive (bench/http1.py), connections "
                  f"dealt over up to {self.client.procs} processes, one event loop each{wrk}")
        info = RunInfo(target.display, kind, self.gunicorn.display, client, args.db, created)
        if args.json:
            doc = orjson.loads(as_json(info, results))
            doc["settee_worker_peak_rss_kb"] = rss
            return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        rss_line = ("\nsettee peak RSS per worker: "
                    + ", ".join(f"{kb / 1024:.0f} MiB" for kb in rss)) if rss else ""
        return table(info, results) + rss_line

    def workloads(self, target: Target) -> list[Result]:
        """The target's workloads, in an order where each finds what it needs."""
        args = self.args
        self.hellos = [self.ceiling()]
        bulk = BulkDocs(args.db, self.tag, args.docs, args.batch, args.doc_bytes)
        loaded = self.bracketed(bulk, target, args.bulk_clients, args.docs, args.bulk_duration)
        if not loaded.measurement.keys:
            raise LoadError(f"_bulk_docs wrote no documents: {loaded.measurement.samples}")
        get = GetRandom(args.db, tuple(loaded.measurement.keys), args.seed)
        pages = AllDocsPages(args.db, args.page_limit)
        put = PutDocs(args.db, self.tag, args.doc_bytes)
        return [
            loaded,
            self.bracketed(get, target, args.clients, args.requests, args.duration),
            self.bracketed(pages, target, args.page_clients, args.rows, args.duration),
            self.bracketed(put, target, args.clients, args.puts, args.duration),  # grows the db
        ]

    def bracketed(self, workload: Workload, target: Target, clients: int, count: int,
                  duration: float) -> Result:
        """Measure a workload, then the ceiling again: each ratio uses the runs around it."""
        measured = self.timed(workload, target, clients, count, duration)
        self.hellos.append(self.ceiling())
        return Result(measured, self.hellos[-2], self.hellos[-1])

    def ceiling(self) -> Measurement:
        """GET requests/s of the hello-world app, with the same client settings."""
        args = self.args
        return self.timed(HelloGet(), self.hello, args.clients, args.requests, args.hello_duration)

    def timed(self, workload: Workload, target: Target, clients: int, count: int,
              duration: float) -> Measurement:
        """Measure one workload, saying what it does on stderr."""
        _say(f"measuring {workload.name}: {clients} connections, "
             f"up to {count:,} items or {duration:g}s")
        m = measure(workload, target, clients=clients, count=count, duration=duration,
                    settings=self.client)
        _say(f"  {m.rate:,.0f} {m.unit} ({m.items:,} in {m.seconds:.2f}s, {m.errors} errors)")
        return m


def worker_rss_kb(port: int) -> list[int]:
    """Peak RSS (VmHWM, KiB) of each gunicorn worker serving settee on `port` (Linux `/proc`):
    the processes whose command line binds that port and whose parent is one of them."""
    found: dict[int, tuple[int, int]] = {}  # pid -> (parent pid, peak RSS)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if f":{port}".encode() not in cmdline or b"gunicorn" not in cmdline:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        peak = int(fields.get("VmHWM", "0 kB").split()[0])
        found[int(proc.name)] = (int(fields["PPid"]), peak)
    return sorted(peak for parent, peak in found.values() if parent in found)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(Bench(args).run())
    except (StartError, LoadError, database.DatabaseError, OSError, ValueError) as exc:
        _say(f"bench failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
