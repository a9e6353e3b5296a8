"""Every setting declared once, as data: name, default, parser, help, and how it is shown.

Each setting has a `SETTEE_<NAME>` environment variable, a `--<name>` flag and a key in the TOML
config file (`--config FILE` or `SETTEE_CONFIG`). Precedence: defaults < config file <
environment < command line (or the mapping given to `create_app`). The README's settings table is
generated from `SETTINGS` (`settee settings-table`) and checked against it by a test.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import parsers as p

CONFIG_ENV = "SETTEE_CONFIG"
MASK = "********"


class SettingError(ValueError):
    """A setting with a value its parser refuses; the message names the setting and its source."""


def _default_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 1)))


@dataclass(frozen=True)
class Setting:
    """One declared setting."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False  # never printed (check-config shows it masked)
    default_text: str | None = None  # how docs show a default that is not a literal value

    @property
    def env(self) -> str:
        return "SETTEE_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def shown_default(self) -> str:
        """The default as the help and the README show it."""
        if self.default_text is not None:
            return self.default_text
        return show_value(self, self.default) if self.default not in ("", ()) else "(empty)"


def show_value(setting: Setting, value: Any) -> str:
    """A value for people: lists comma-joined, sizes in MiB/GiB, secrets masked."""
    if setting.secret:
        return MASK if value else "(not set)"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if setting.parse is p.size and isinstance(value, int):
        for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % factor == 0:
                return f"{value // factor}{unit}"
    return str(value)


S = Setting  # a short name for the table below
SETTINGS: tuple[Setting, ...] = (
    # -- serving -----------------------------------------------------------------------------
    S("bind", "127.0.0.1:5984", p.bind,
      "Address and port to listen on (host:port); any non-loopback address needs "
      "admin_password."),
    S("workers", None, p.integer(1), "gunicorn worker processes.",
      default_text="CPU count, 2 to 8"),
    S("threads", 16, p.integer(1), "Threads per worker (gthread); each open feed holds one."),
    S("runtime_dir", "", p.text,
      "Directory for the files the workers share (prometheus metrics, active tasks); "
      "never share one between two servers.", default_text="a new temporary directory"),
    # -- the store -----------------------------------------------------------------------------
    S("data_dir", "./data", p.text, "Directory of the embedded SQLite store."),
    S("database_url", "", p.text,
      "SQLAlchemy URL of the store (postgresql://user:password@host/db) for scale-out; "
      "empty means SQLite in data_dir."),
    S("sqlite_synchronous", "FULL", p.choice("OFF", "NORMAL", "FULL", "EXTRA", upper=True),
      "SQLite PRAGMA synchronous: FULL (a 201 is on disk) or NORMAL (faster; the last commits "
      "can be lost on power failure, never corrupted)."),
    S("busy_timeout_ms", 10_000, p.integer(1), "How long a write waits for the store's lock."),
    S("compress_threshold", 4096, p.integer(0),
      "Bodies of at least this many bytes are stored zstd-compressed (0 turns it off)."),
    # -- admin ---------------------------------------------------------------------------------
    S("admin_user", "admin", p.text, "Name of the server admin."),
    S("admin_password", "", p.text,
      "Password of the server admin; prefer the environment or the config file to the flag, "
      "which other users can see in the process list.", secret=True),
    S("require_valid_user", False, p.boolean,
      "Refuse every request that is not authenticated (401), except GET /_up and /_session."),
    S("auth_secret", "", p.text,
      "Key that signs AuthSession cookies; every node of one deployment needs the same.",
      secret=True, default_text="random, kept in the store"),
    S("auth_timeout", 600.0, p.seconds,
      "Seconds an AuthSession cookie stays valid; it is refreshed when used near its end."),
    S("auth_iterations", 600_000, p.integer(1),
      "PBKDF2-SHA256 iterations for new password hashes (users and the admin)."),
    S("auth_max_iterations", 1_000_000_000, p.integer(1),
      "Stored password hashes with more iterations than this are refused."),
    S("auth_lockout_threshold", 5, p.integer(0),
      "Failed logins for one user from one address before it is locked out (0 turns it off)."),
    S("auth_lockout_seconds", 300.0, p.seconds, "How long a lockout lasts."),
    S("cookie_same_site", "lax", p.choice("", "strict", "lax", "none"),
      "SameSite attribute of the AuthSession cookie (empty leaves it out)."),
    S("cookie_secure", False, p.boolean,
      "Mark the AuthSession cookie Secure (serve over TLS behind a proxy)."),
    S("admin_only_all_dbs", True, p.boolean,
      "Only server admins may list databases (/_all_dbs, /_dbs_info), as CouchDB 3."),
    S("users_db_security_editable", False, p.boolean,
      "Let admins change the _security of _users (CouchDB 3 refuses it; its default lets only "
      "admins use _users)."),
    # -- limits --------------------------------------------------------------------------------
    S("max_http_request_size", 64 * 1024**2, p.size,
      "Largest request body (413 too_large beyond)."),
    S("max_document_size", 8_000_000, p.size,
      "Largest JSON document (413 document_too_large beyond)."),
    S("max_attachment_size", 1024**3, p.size,
      "Largest attachment (413 attachment_too_large beyond)."),
    S("max_json_depth", 64, p.integer(1), "Deepest nesting of arrays and objects in a body."),
    S("max_uri_length", 8000, p.integer(1), "Longest request URI (414 beyond)."),
    S("uuids_max_count", 1000, p.integer(1), "Most uuids one GET /_uuids may ask for."),
    S("max_bulk_docs", 10_000, p.integer(1),
      "Most documents in one _bulk_docs, _bulk_get or _revs_diff request."),
    # -- JavaScript and views ------------------------------------------------------------------
    S("js_pool_size", 2, p.integer(1), "JavaScript contexts per worker for design functions."),
    S("js_time_limit", 5.0, p.seconds, "Longest one JavaScript call may run, in seconds."),
    S("js_memory_limit", 64 * 1024**2, p.size, "Memory limit of one JavaScript context."),
    S("python_views", (), p.dotted_paths,
      "Comma-separated Python view functions the operator allows, as module:function or "
      "module:* (mypkg.views:by_date); design docs may name only these."),
    S("background_indexing", False, p.boolean,
      "Keep view indexes current from a background thread instead of at query time only."),
    # -- logging -------------------------------------------------------------------------------
    S("log_level", "info", p.choice("debug", "info", "warning", "error", "critical"),
      "Log level: debug, info, warning, error or critical."),
    S("log_format", "text", p.choice("text", "json"),
      "Log lines as text or as one JSON object per line (access log included)."),
    S("access_log", True, p.boolean,
      "One line per request on stdout: method, path, status, duration, database."),
    # -- CORS ----------------------------------------------------------------------------------
    S("cors_origins", (), p.origins,
      "Origins allowed to call from a browser: * or a comma-separated list of "
      "https://host[:port]; empty turns CORS off."),
    S("cors_credentials", False, p.boolean,
      "Allow credentials (cookies, Authorization) on CORS requests; not with cors_origins *."),
    S("cors_headers", (), p.header_names,
      "Request headers allowed on CORS requests beyond CouchDB's built-in list."),
)

BY_NAME = {s.name: s for s in SETTINGS}


class Settings:
    """Resolved settings; attribute access by name (`settings.data_dir`)."""

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str] | None = None,
                 config_file: str | None = None) -> None:
        self._values = dict(values)
        self.sources = dict(sources or {})
        self.config_file = config_file

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        """Every setting and its value."""
        return dict(self._values)

    def source(self, name: str) -> str:
        """Where a value came from: `default`, `file PATH`, `env SETTEE_X` or `flag --x`."""
        return self.sources.get(name, "default")

    @property
    def store_url(self) -> str:
        """The store URL: `database_url`, or the SQLite file in `data_dir`."""
        if self._values.get("database_url"):
            return str(self._values["database_url"])
        from ..store import sqlite_url
        return sqlite_url(self._values["data_dir"])

    @property
    def workers_or_default(self) -> int:
        return self._values.get("workers") or _default_workers()


def read_config_file(path: str) -> dict[str, Any]:
    """The settings in a TOML file: top-level keys named as the settings."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingError(f"config file {path}: no such file") from None
    except OSError as exc:
        raise SettingError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(f"config file {path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise SettingError(f"config file {path}: unknown setting(s): {', '.join(unknown)}")
    return data


def resolve(overrides: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None,
            config_file: str | None = None) -> Settings:
    """Defaults < config file < `SETTEE_*` environment < `overrides`, each value parsed.

    The config file is `config_file` if given, else the one `SETTEE_CONFIG` names, if any.
    """
    environ = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(BY_NAME))
    if unknown:
        raise SettingError(f"unknown setting(s): {', '.join(unknown)}")
    config_file = config_file or environ.get(CONFIG_ENV) or None
    from_file = read_config_file(config_file) if config_file else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        layers = ((overrides, f"flag {setting.flag}", setting.name),
                  (environ, f"env {setting.env}", setting.env),
                  (from_file, f"file {config_file}", setting.name))
        for mapping, source, key in layers:
            if key in mapping:
                values[setting.name] = _parse(setting, mapping[key], source)
                sources[setting.name] = source
                break
        else:
            values[setting.name] = setting.default
    settings = Settings(values, sources, config_file)
    _check_together(settings)
    return settings


def _parse(setting: Setting, raw: Any, source: str) -> Any:
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        where = source.split(" ", 1)[1] if not source.startswith("file") else \
            "in " + source.split(" ", 1)[1]
        raise SettingError(f"{setting.name} ({where}): {exc}") from None


def _check_together(settings: Settings) -> None:
    """Rules that involve two settings."""
    from .sessions import sample_secret_problem
    problem = sample_secret_problem(settings.auth_secret)
    if problem:
        raise SettingError(problem)
    if settings.cors_credentials and "*" in settings.cors_origins:
        raise SettingError("cors_credentials cannot be true when cors_origins is * "
                           "(browsers refuse it): list the origins instead")


def markdown_table() -> str:
    """The README's settings table, generated from `SETTINGS`."""
    lines = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        default = setting.shown_default()
        default = f"`{default}`" if setting.default_text is None and default != "(empty)" \
            else default
        meaning = setting.help.replace("|", "\\|")
        lines.append(f"| `{setting.name}` | `{setting.env}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"
