"""The `settee` command: `serve` under gunicorn and `check-config`, one flag per declared setting.

Flags are generated from `settings.SETTINGS`, so a new setting is a new flag with no code here.
Precedence is that of `settings.resolve`: defaults < `SETTEE_*` environment < flags. A value
its parser refuses, or a public bind with no admin password, is reported on stderr with exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy.engine import make_url

from . import serve
from .settings import SETTINGS, Setting, SettingError, Settings, resolve

ADMIN_PASSWORD_ENV = "SETTEE_ADMIN_PASSWORD"
USAGE_ERROR = 2


def _version() -> str:
    try:
        return version("settee")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flag > SETTEE_* environment > default)")
    for setting in SETTINGS:
        default = "" if setting.default in (None, "") else f", default {setting.default}"
        group.add_argument(
            setting.flag,
            dest=setting.name,
            metavar=setting.name.upper(),
            default=None,  # None lets the environment and the default show through
            help=f"{setting.help} [{setting.env}{default}]".replace("%", "%%"),
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help is `settee --help`)."""
    parser = argparse.ArgumentParser(
        prog="settee",
        description="A document database server that speaks CouchDB's HTTP API, "
                    "on SQLite or PostgreSQL.",
        epilog=f"Binding to a non-loopback address needs {ADMIN_PASSWORD_ENV} in the environment.",
    )
    parser.add_argument("--version", action="version", version=f"settee {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve", help="run the server under gunicorn (gthread workers)",
        description="Run the server under gunicorn with gthread workers; the access log goes "
                    "to stdout.")
    _add_setting_flags(serve_parser)
    check_parser = commands.add_parser(
        "check-config", help="print every resolved setting and where it came from",
        description="Resolve the settings exactly as `serve` would, print them and exit.")
    _add_setting_flags(check_parser)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {s.name: getattr(args, s.name) for s in SETTINGS
            if getattr(args, s.name, None) is not None}


def check_bind(settings: Settings, environ: Mapping[str, str]) -> None:
    """Refuse a bind other machines can reach unless an admin password is configured."""
    bind = serve.parse_bind(settings.bind)
    if not bind.is_loopback and not environ.get(ADMIN_PASSWORD_ENV):
        raise SettingError(
            f"refusing to bind {bind.host} without an admin password ({ADMIN_PASSWORD_ENV})")


def _source(setting: Setting, overrides: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    if setting.name in overrides:
        return f"flag {setting.flag}"
    if setting.env in environ:
        return f"env {setting.env}"
    return "default"


def _shown(setting: Setting, settings: Settings) -> str:
    value = getattr(settings, setting.name)
    if setting.name == "workers" and value is None:
        return f"{settings.workers_or_default} (from the CPU count)"
    if setting.name == "database_url" and value:
        return make_url(value).render_as_string(hide_password=True)
    return str(value)


def check_config(settings: Settings, overrides: Mapping[str, Any],
                 environ: Mapping[str, str]) -> None:
    """Print each setting, its value and its source; then the store it would open."""
    width = max(len(s.name) for s in SETTINGS)
    rows = [(s.name, _shown(s, settings), _source(s, overrides, environ)) for s in SETTINGS]
    value_width = max(len(value) for _, value, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {source}")
    store = make_url(settings.store_url).render_as_string(hide_password=True)
    print(f"{'store':<{width}}  {store}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `settee` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    overrides = _overrides(args)
    environ = os.environ
    try:
        settings = resolve(overrides, environ)
        if args.command == "check-config":
            check_config(settings, overrides, environ)
        check_bind(settings, environ)
    except SettingError as exc:
        print(f"settee: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.command == "serve":
        serve.run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
