"""The code checks STYLE.md asks CI to run: ruff on everything, mypy --strict on the packages,
the tests and the benchmarks.

Both run with the versions pinned in the `test` extra and the settings in `pyproject.toml`.
mypy must see the packages under their installed names (`settee.server`, ...), whose folders sit
at the top of the repository: it checks them through a folder of symlinks named that way. The
tests and the benchmarks import their helper modules by bare name (`conftest`, `live`,
`loadgen`, ...), as pytest and `sys.path` give them at run time: MYPYPATH names those folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "store", "views", "client")


def _run(argv: list[str], cwd: Path,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False, env=env)


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    """A folder holding `settee/`, a symlink in it to each package: mypy runs from there."""
    settee = tmp_path / "farm" / "settee"
    settee.mkdir(parents=True)
    for name in PACKAGES:
        (settee / name).symlink_to(ROOT / name, target_is_directory=True)
    return settee.parent


def _mypy(farm: Path, cache: Path, targets: list[str],
          path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """mypy on `targets` from `farm`, with its own cache, and MYPYPATH set to `path` if any."""
    argv = ["mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
            *targets]
    env = {**os.environ, "MYPYPATH": os.pathsep.join(map(str, path))} if path else None
    return _run(argv, farm, env)


def test_ruff_finds_nothing() -> None:
    done = _run(["ruff", "check", "--no-cache", "."], ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes_on_the_packages(farm: Path, tmp_path: Path) -> None:
    targets = [arg for name in PACKAGES for arg in ("-p", f"settee.{name}")]
    done = _mypy(farm, tmp_path / "cache", targets)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes_on_the_tests(farm: Path, tmp_path: Path) -> None:
    done = _mypy(farm, tmp_path / "cache", ["--explicit-package-bases", str(ROOT / "tests")],
                 (ROOT / "tests",))
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes_on_the_benchmarks(farm: Path, tmp_path: Path) -> None:
    """bench/client_bench.py starts its server with the tests' `live` module."""
    done = _mypy(farm, tmp_path / "cache", ["--explicit-package-bases", str(ROOT / "bench")],
                 (ROOT / "bench", ROOT / "tests"))
    assert done.returncode == 0, done.stdout + done.stderr
