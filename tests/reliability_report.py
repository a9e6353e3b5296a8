"""pytest plugin of the reliability tests: the `soak` marker and the figures of section 5."""

# Loaded by the `test_reliability_*` files (`pytest_plugins = ["reliability_report"]`). Every test
# in those files carries the `soak` marker, so `make soak` (`-m "soak or live"`) runs them at
# their soak sizes; the figures they record with `reliability.figure` are printed after the run.

from __future__ import annotations

from typing import Any

import pytest
import reliability

ORDER = [
    "kill -9 points survived",
    "acked writes checked",
    "lost acked writes",
    "unacked writes resolved (absent/whole)",
    "partial or torn writes",
    "statement crash points (pre/post state)",
    "statement crash points in neither state",
    "I/O fault points injected",
    "I/O fault points mishandled",
    "same-rev race rounds",
    "most concurrent same-rev writers",
    "same-rev rounds without exactly one winner",
    "counter increments",
    "lost updates",
    "fuzzed requests",
    "5xx seen",
    "501 not_implemented (attachments)",
    "slowloris p99 ms",
    "model steps",
    "model requests",
    "divergences",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: has a larger size under SETTEE_SOAK=1 (make soak)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith("test_reliability_"):
            item.add_marker(pytest.mark.soak)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures = reliability.FIGURES
    if not figures:
        return
    known = reliability.BACKENDS
    backends = sorted({b for row in figures.values() for b in row},
                      key=lambda b: (known.index(b) if b in known else len(known), b))
    size = "soak" if reliability.SOAK else "CI"
    terminalreporter.section(f"settee reliability figures ({size} sizes)")
    names = [n for n in ORDER if n in figures] + sorted(set(figures) - set(ORDER))
    width = max(len(n) for n in names)
    terminalreporter.write_line(" " * width + "".join(f"{b:>14}" for b in backends))
    for name in names:
        cells = "".join(f"{_shown(figures[name].get(b)):>14}" for b in backends)
        terminalreporter.write_line(f"{name:<{width}}{cells}")


def _shown(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
