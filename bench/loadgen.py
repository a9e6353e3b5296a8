"""Drive a workload from several client processes at once and add up what they measured.

A Python process keeps at most one core busy, and on a small machine the client competes with the
server for the same cores, so the connections ("slots") are dealt over `procs` processes, each
running its share on one event loop (`eventloop.py`). Every slot builds its requests, opens its
keep-alive connection and sends one warm-up request before the clock starts; then all start
together and each stops at its share of the count or at the deadline, whichever comes first.
Throughput is items done over the wall time from the common start to the last slot's end. Client
CPU time is measured too, so a report can show that the client was not the bottleneck.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from queue import Empty
from typing import Protocol, TypeVar

from eventloop import SAMPLES, Flow, FlowResult, Loop, Session
from http1 import Target

T = TypeVar("T")


class Workload(Protocol):
    """A picklable description of a workload, sent to the client processes."""

    @property
    def name(self) -> str:
        """The row label in the report."""
        ...

    @property
    def unit(self) -> str:
        """What the figure counts per second: req/s, docs/s, rows/s."""
        ...

    def session(self, slot: int, slots: int, quota: int) -> Session:
        """The state for connection `slot` of `slots`, which may do `quota` items."""
        ...


@dataclass(frozen=True)
class ClientSettings:
    """How the load is generated."""

    procs: int = 2
    timeout: float = 60.0

    def split(self, clients: int) -> list[list[int]]:
        """Deal slot numbers 0..clients-1 over at most `procs` processes."""
        procs = max(1, min(self.procs, clients))
        return [list(range(p, clients, procs)) for p in range(procs)]


@dataclass
class Measurement:
    """A workload's totals over all client processes."""

    name: str
    unit: str
    clients: int
    count: int
    duration: float
    items: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_s: float
    bound: str
    samples: list[str]
    keys: list[str]

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def request_rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        """Nearest-rank latency percentile in ms, `q` in (0, 100]."""
        if not self.latencies_ms:
            return None
        rank = max(1, -(-len(self.latencies_ms) * q // 100))
        return self.latencies_ms[int(rank) - 1]


class LoadError(RuntimeError):
    """A client process failed before or while measuring."""


def measure(
    workload: Workload,
    target: Target,
    *,
    clients: int,
    count: int,
    duration: float,
    settings: ClientSettings,
) -> Measurement:
    """Run `workload` over `clients` connections until `count` items or `duration` seconds."""
    ctx = mp.get_context("spawn")
    groups = settings.split(clients)
    quotas = [count // clients + (1 if slot < count % clients else 0) for slot in range(clients)]
    ready: Queue[str | None] = ctx.Queue()
    results: Queue[tuple[list[FlowResult], float] | str] = ctx.Queue()
    go = ctx.Event()
    t0 = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_client_process,
            args=(workload, target, settings.timeout, group, clients, quotas, duration,
                  ready, go, t0, results),
            daemon=True,
        )
        for group in groups
    ]
    for proc in procs:
        proc.start()
    try:
        for problem in _gather(ready, procs, timeout=120):
            if problem is not None:
                raise LoadError(f"{workload.name}: a client failed to start: {problem}")
        t0.value = time.time()
        go.set()
        flow_results: list[FlowResult] = []
        cpu = 0.0
        for got in _gather(results, procs, timeout=duration + 2 * settings.timeout + 60):
            if isinstance(got, str):
                raise LoadError(f"{workload.name}: a client failed: {got}")
            flow_results += got[0]
            cpu += got[1]
    finally:
        go.set()  # lets a waiting client see t0 == 0 and leave
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    return _total(workload, clients, count, duration, t0.value, flow_results, cpu)


def _gather(queue: Queue[T], procs: Sequence[BaseProcess], timeout: float) -> list[T]:
    """One message from each process, failing fast if one dies without sending it."""
    deadline = time.monotonic() + timeout
    messages: list[T] = []
    while len(messages) < len(procs):
        try:
            messages.append(queue.get(timeout=0.2))
            continue
        except Empty:
            pass
        if any(p.exitcode not in (None, 0) for p in procs):
            codes = [p.exitcode for p in procs]
            raise LoadError(f"a client process died (exit codes {codes})")
        if time.monotonic() > deadline:
            raise LoadError(f"no word from the client processes in {timeout:g}s")
    return messages


def _total(
    workload: Workload,
    clients: int,
    count: int,
    duration: float,
    start: float,
    flows: list[FlowResult],
    cpu: float,
) -> Measurement:
    seconds = max((f.finished for f in flows), default=start) - start
    items = sum(f.items for f in flows)
    if items >= count:
        bound = "count"
    elif all(f.exhausted for f in flows):
        bound = "done"
    else:
        bound = "time"
    return Measurement(
        name=workload.name,
        unit=workload.unit,
        clients=clients,
        count=count,
        duration=duration,
        items=items,
        requests=sum(f.requests for f in flows),
        errors=sum(f.errors for f in flows),
        seconds=seconds,
        latencies_ms=sorted(ns / 1e6 for f in flows for ns in f.latencies_ns),
        client_cpu_s=cpu,
        bound=bound,
        samples=[m for f in flows for m in f.samples][:SAMPLES],
        keys=[k for f in flows for k in f.keys],
    )


def _client_process(
    workload: Workload,
    target: Target,
    timeout: float,
    slots: list[int],
    nslots: int,
    quotas: list[int],
    duration: float,
    ready: Queue[str | None],
    go: Event,
    t0: Synchronized[float],
    results: Queue[tuple[list[FlowResult], float] | str],
) -> None:
    """One client process: prepare its slots, wait for the start, run them on one event loop."""
    try:
        flows = [Flow(workload.session(slot, nslots, quotas[slot]), target, quotas[slot], timeout)
                 for slot in slots]
        for flow in flows:
            flow.warm_up()
    except Exception as exc:  # reported to the parent, which stops the run
        ready.put(f"{type(exc).__name__}: {exc}")
        return
    ready.put(None)
    go.wait()
    start = t0.value
    if start == 0.0:  # the parent gave up before starting
        return
    cpu_start = time.process_time()
    try:
        Loop(deadline=start + duration).run(flows)
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        return
    results.put(([flow.result for flow in flows], time.process_time() - cpu_start))
