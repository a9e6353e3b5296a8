"""Turn measurements into the printed table, or into JSON for machines.

Each workload's figure is shown with its ratio to the hello-world ceiling measured just before and
just after it (the mean of the two), so that a machine whose speed drifts during the run, as a
shared one does, moves the figure and its ceiling together. For the per-request workloads (PUT,
GET) the ratio is requests per second over requests per second; for the batched ones
(`_bulk_docs`, `_all_docs`) it is documents or rows per second over hello requests per second,
i.e. how many items the target moves in the time the bare stack answers one trivial request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from loadgen import Measurement

DRIFT_WARNING = 0.2  # bracketing hello runs further apart than this get a mark


@dataclass(frozen=True)
class RunInfo:
    """What was measured and how, for the header of the report."""

    target: str
    target_kind: str
    server: str
    client: str
    db: str
    db_created: bool


@dataclass(frozen=True)
class Result:
    """A workload's measurement and the hello-world runs just before and after it."""

    measurement: Measurement
    before: Measurement
    after: Measurement

    @property
    def ceiling(self) -> float:
        """The hello GET rate this figure is divided by."""
        return (self.before.rate + self.after.rate) / 2

    @property
    def ratio(self) -> float:
        return self.measurement.rate / self.ceiling if self.ceiling > 0 else 0.0

    @property
    def drift(self) -> float:
        """How far apart the two hello runs are, relative to their mean."""
        gap = abs(self.before.rate - self.after.rate)
        return gap / self.ceiling if self.ceiling > 0 else 0.0


def hello_runs(results: list[Result]) -> list[Measurement]:
    """Every hello-world run, in order."""
    return [r.before for r in results] + [results[-1].after]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


_HEADER = ["workload", "conns", "items", "secs", "bound", "figure", "unit", "hello req/s",
           "x hello", "p50 ms", "p99 ms", "errors", "client cores"]
_RIGHT = {1, 2, 3, 5, 7, 8, 9, 10, 11, 12}


def _cells(m: Measurement, ceiling: str, ratio: str) -> list[str]:
    return [
        m.name,
        str(m.clients),
        f"{m.items:,}",
        f"{m.seconds:.2f}",
        m.bound,
        f"{m.rate:,.0f}",
        m.unit,
        ceiling,
        ratio,
        _ms(m.percentile(50)),
        _ms(m.percentile(99)),
        str(m.errors),
        f"{m.client_cpu_s / m.seconds:.2f}" if m.seconds > 0 else "-",
    ]


def table(info: RunInfo, results: list[Result]) -> str:
    """The plain-text report."""
    hellos = hello_runs(results)
    rows = [_HEADER]
    rows += [_cells(h, "-", "-") for h in hellos[:1]]
    for r in results:
        mark = " *" if r.drift > DRIFT_WARNING else ""
        rows.append(_cells(r.measurement, f"{r.ceiling:,.0f}", f"{r.ratio:.3f}{mark}"))
        rows.append(_cells(r.after, "-", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    db_fate = "made and deleted by this run" if info.db_created else "existed; kept"
    lines = [
        f"target:  {info.target} ({info.target_kind})",
        f"server:  gunicorn {info.server} (hello-world ceiling always; settee when started here)",
        f"client:  {info.client}",
        f"db:      {info.db} ({db_fate})",
        "",
    ]
    for row in rows:
        cells = [cell.rjust(width) if i in _RIGHT else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    rates = [h.rate for h in hellos]
    lines += [
        "",
        "hello req/s: mean of the hello GET runs just before and after the row; x hello: figure /",
        "  hello req/s (for _bulk_docs and _all_docs: items/s per hello req/s).",
        f"hello GET over the run: {min(rates):,.0f} to {max(rates):,.0f} req/s.",
        "bound: what ended the workload (count, time, or done = it ran out of work).",
        "p50/p99: latency of one request. client cores: CPU the load generator used, in cores.",
    ]
    if any(r.drift > DRIFT_WARNING for r in results):
        lines.append(f"*: the hello runs around it differ by more than {DRIFT_WARNING:.0%}: the "
                     "machine was busy or noisy; rerun for a firmer ratio.")
    for m in [*hellos, *(r.measurement for r in results)]:
        for sample in m.samples:
            lines.append(f"error in {m.name}: {sample}")
    return "\n".join(lines)


def _entry(m: Measurement) -> dict[str, Any]:
    return {
        "workload": m.name,
        "unit": m.unit,
        "figure": m.rate,
        "requests_per_s": m.request_rate,
        "items": m.items,
        "requests": m.requests,
        "errors": m.errors,
        "seconds": m.seconds,
        "bound": m.bound,
        "count_limit": m.count,
        "time_limit_s": m.duration,
        "clients": m.clients,
        "p50_ms": m.percentile(50),
        "p99_ms": m.percentile(99),
        "client_cpu_cores": m.client_cpu_s / m.seconds if m.seconds > 0 else None,
        "error_samples": m.samples,
    }


def as_json(info: RunInfo, results: list[Result]) -> str:
    """The same figures as a JSON document."""
    doc = {
        "target": info.target,
        "target_kind": info.target_kind,
        "gunicorn": info.server,
        "client": info.client,
        "db": info.db,
        "db_created": info.db_created,
        "hello": [_entry(h) for h in hello_runs(results)],
        "results": [
            {**_entry(r.measurement), "hello_req_per_s": r.ceiling, "ratio_to_hello": r.ratio,
             "hello_drift": r.drift}
            for r in results
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
