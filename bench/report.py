"""Turn measurements into the printed table, or into JSON for machines.

Every figure is shown with its ratio to the hello-world ceiling measured in the same run: the mean
of the hello GET rate measured before and after the target's workloads (their own ratios to that
mean show how much the machine drifted). For the per-request workloads (PUT, GET) the ratio is
requests per second over requests per second; for the batched ones (`_bulk_docs`, `_all_docs`) it
is documents or rows per second over hello requests per second, i.e. how many items the target
moves in the time the bare stack answers one trivial request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from loadgen import Measurement


@dataclass(frozen=True)
class RunInfo:
    """What was measured and how, for the header of the report."""

    target: str
    target_kind: str
    server: str
    client: str
    db: str
    db_created: bool


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row(m: Measurement, ceiling: float) -> list[str]:
    ratio = m.rate / ceiling if ceiling > 0 else 0.0
    return [
        m.name,
        str(m.clients),
        f"{m.items:,}",
        f"{m.seconds:.2f}",
        m.bound,
        f"{m.rate:,.0f}",
        m.unit,
        f"{ratio:.3f}",
        _ms(m.percentile(50)),
        _ms(m.percentile(99)),
        str(m.errors),
        f"{m.client_cpu_s / m.seconds:.2f}" if m.seconds > 0 else "-",
    ]


_HEADER = ["workload", "conns", "items", "secs", "bound", "figure", "unit", "x hello",
           "p50 ms", "p99 ms", "errors", "client cores"]
_RIGHT = {1, 2, 3, 5, 7, 8, 9, 10, 11}


def ceiling_rate(ceilings: list[Measurement]) -> float:
    """The ceiling the ratios divide by: the mean hello GET rate."""
    return sum(m.rate for m in ceilings) / len(ceilings)


DRIFT_WARNING = 0.2


def drift(ceilings: list[Measurement]) -> float:
    """How far apart the hello measurements are, relative to their mean."""
    rates = [m.rate for m in ceilings]
    mean = sum(rates) / len(rates)
    return (max(rates) - min(rates)) / mean if mean > 0 else 0.0


def table(info: RunInfo, ceilings: list[Measurement], results: list[Measurement]) -> str:
    """The plain-text report."""
    ceiling = ceiling_rate(ceilings)
    db_fate = "made and deleted by this run" if info.db_created else "existed; kept"
    rows = [_HEADER] + [_row(m, ceiling) for m in [*ceilings, *results]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
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
    lines += [
        "",
        f"x hello: figure / {ceiling:,.0f} req/s, the mean hello-world GET rate of this run",
        "  (for _bulk_docs and _all_docs: items/s per hello req/s).",
        "bound: what ended the workload (count, time, or done = it ran out of work).",
        "p50/p99: latency of one request. client cores: CPU the load generator used, in cores.",
    ]
    if (moved := drift(ceilings)) > DRIFT_WARNING:
        lines.append(f"warning: the ceiling moved {moved:.0%} from before to after: the machine "
                     "was busy or noisy; rerun for firmer ratios.")
    for m in [*ceilings, *results]:
        for sample in m.samples:
            lines.append(f"error in {m.name}: {sample}")
    return "\n".join(lines)


def as_json(info: RunInfo, ceilings: list[Measurement], results: list[Measurement]) -> str:
    """The same figures as a JSON document."""
    ceiling = ceiling_rate(ceilings)

    def entry(m: Measurement) -> dict[str, Any]:
        return {
            "workload": m.name,
            "unit": m.unit,
            "figure": m.rate,
            "ratio_to_hello": m.rate / ceiling if ceiling > 0 else None,
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

    doc = {
        "target": info.target,
        "target_kind": info.target_kind,
        "gunicorn": info.server,
        "client": info.client,
        "db": info.db,
        "db_created": info.db_created,
        "hello_req_per_s": ceiling,
        "hello_drift": drift(ceilings),
        "hello": [entry(m) for m in ceilings],
        "results": [entry(m) for m in results],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
