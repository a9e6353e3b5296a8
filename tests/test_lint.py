"""The code checks STYLE.md asks CI to run: ruff on everything, mypy --strict on the packages.

Both run with the versions pinned in the `test` extra and the settings in `pyproject.toml`.
mypy must see the packages under their installed names (`settee.server`, ...), whose folders sit
at the top of the repository: it checks them through a folder of symlinks named that way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "store", "views", "client")


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)


def test_ruff_finds_nothing() -> None:
    done = _run(["ruff", "check", "--no-cache", "."], ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes_on_the_packages(tmp_path: Path) -> None:
    farm = tmp_path / "settee"
    farm.mkdir()
    for name in PACKAGES:
        (farm / name).symlink_to(ROOT / name, target_is_directory=True)
    argv = ["mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(tmp_path / "cache")]
    for name in PACKAGES:
        argv += ["-p", f"settee.{name}"]
    done = _run(argv, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
