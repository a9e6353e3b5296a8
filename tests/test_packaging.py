"""Every code folder is declared as a package, so a regular (non-editable) install has it all."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = {"server": "settee.server", "store": "settee.store", "views": "settee.views",
       "client": "settee.client"}


def test_every_folder_with_an_init_is_a_declared_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = dict(config["package-dir"])
    for folder, package in TOP.items():
        base = ROOT / folder
        if not base.exists():
            continue
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            name = package + rel[len(folder):].replace("/", ".")
            assert name in config["packages"], f"{rel} is not in [tool.setuptools] packages"
            assert declared.get(name) == rel, f"{name} is not mapped to {rel} in package-dir"
