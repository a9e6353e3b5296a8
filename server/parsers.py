"""Value parsers for settings: text from the environment or a flag, or a native TOML value.

Each parser returns the typed value or raises `ValueError` (or `TypeError`, for a TOML value of the
wrong type) with a message that says what was expected; `settings.resolve` prefixes it with the
setting's name and where the value came from.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost"})
DEFAULT_PORT = 5984
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2,
              "g": 1024**3, "gib": 1024**3}
_SIZE = re.compile(r"^\s*(\d[\d_]*)\s*([a-z]*)\s*$", re.IGNORECASE)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:(\*|[A-Za-z_]\w*)|(\.[A-Za-z_]\w*))$")
_ORIGIN = re.compile(r"^https?://[^/\s,]+$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def text(raw: Any) -> str:
    """A string, as given."""
    if not isinstance(raw, str):
        raise TypeError(f"expected a string, got {raw!r}")
    return raw


def boolean(raw: Any) -> bool:
    """true/false, yes/no, on/off, 1/0 (or a TOML boolean)."""
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def integer(minimum: int | None = None) -> Callable[[Any], int]:
    """A whole number, at least `minimum`."""
    def parse(raw: Any) -> int:
        if isinstance(raw, (bool, float)):
            raise TypeError(f"expected a whole number, got {raw!r}")
        try:
            value = int(str(raw).strip().replace("_", "")) if not isinstance(raw, int) else raw
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value
    return parse


def size(raw: Any) -> int:
    """A positive number of bytes, optionally with a binary unit: `65536`, `64MiB`, `1G`."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        match = _SIZE.match(str(raw))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in SIZE_UNITS:
            raise ValueError(f"expected a number of bytes such as 1048576 or 64MiB, got {raw!r}")
        value = int(match.group(1).replace("_", "")) * SIZE_UNITS[unit]
    if value <= 0:
        raise ValueError("must be a positive number of bytes")
    return value


def seconds(raw: Any) -> float:
    """A positive duration in seconds (`5`, `0.5`)."""
    if isinstance(raw, bool):
        raise TypeError(f"expected a number of seconds, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def choice(*options: str, upper: bool = False) -> Callable[[Any], str]:
    """One of `options`, case-insensitively."""
    def parse(raw: Any) -> str:
        value = str(raw).strip()
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return value
    return parse


def _items(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        if not all(isinstance(item, str) for item in raw):
            raise TypeError(f"expected a list of strings, got {raw!r}")
        items = [item.strip() for item in raw]
    elif isinstance(raw, str):
        items = [item.strip() for item in raw.split(",")]
    else:
        raise TypeError(f"expected a comma-separated string or a list, got {raw!r}")
    return tuple(item for item in items if item)


def names_matching(pattern: re.Pattern[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    """A comma-separated list (or TOML array) whose every item matches `pattern`."""
    def parse(raw: Any) -> tuple[str, ...]:
        items = _items(raw)
        for item in items:
            if not pattern.match(item):
                raise ValueError(f"{item!r} is not {what}")
        return items
    return parse


dotted_paths = names_matching(_DOTTED, "a path such as mypkg.views:by_date or mypkg.views:*")
header_names = names_matching(_HEADER, "an HTTP header name")


def origins(raw: Any) -> tuple[str, ...]:
    """`*` or a list of `http(s)://host[:port]` origins."""
    items = _items(raw)
    if "*" in items and len(items) > 1:
        raise ValueError("`*` cannot be combined with other origins")
    for item in items:
        if item != "*" and not _ORIGIN.match(item):
            raise ValueError(f"{item!r} is not an origin such as https://app.example.com")
    return items


# -- bind -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bind:
    """A parsed `host:port` (IPv6 hosts in brackets: `[::1]:5984`)."""

    host: str
    port: int

    @property
    def address(self) -> str:
        """The bind string gunicorn takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can connect (127.0.0.0/8, ::1 or `localhost`)."""
        if self.host.lower() in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # any other name may resolve to a public address


def parse_bind(raw: str) -> Bind:
    """`host:port`, `[v6]:port` or a bare host (port 5984); `ValueError` otherwise."""
    value = raw.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"expected [ipv6]:port, got {value!r}")
        port_text = rest[1:]
    elif value.count(":") > 1:
        raise ValueError(f"put an IPv6 address in brackets, e.g. [::1]:5984, got {value!r}")
    else:
        host, _, port_text = value.partition(":")
    if not host:
        raise ValueError(f"missing host in {value!r} (use 0.0.0.0 for every interface)")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    return Bind(host, port)


def bind(raw: Any) -> str:
    """A bind address, checked and kept as text."""
    parse_bind(text(raw))
    return str(raw).strip()
