"""Failed-login lockout: after N wrong passwords for one (user, address) pair, refuse it a while.

As CouchDB's `chttpd_auth_lockout` (mode `enforce`): the count lives in the worker's memory, a
locked pair is answered 403 before any password hash is computed (so guessing costs the server
no PBKDF2 time), and a success clears the pair. The table is bounded: the oldest pairs are
forgotten first, so an attacker cycling through names cannot grow it without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from threading import Lock

from .errors import HttpError

MAX_PAIRS = 10_000


class LockedOut(HttpError):
    """Too many failed logins for this user from this address (403 `forbidden`)."""

    status, error = 403, "forbidden"
    reason = "Account is temporarily locked due to multiple authentication failures"


class Lockout:
    """Failure counts per (name, address), each pair forgotten `seconds` after its first failure."""

    def __init__(self, threshold: int, seconds: float, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.seconds = seconds
        self.clock = clock
        self._pairs: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = Lock()

    def check(self, name: str, address: str) -> None:
        """Raise `LockedOut` while the pair has reached the threshold within the window."""
        if self.threshold <= 0:
            return
        with self._lock:
            entry = self._pairs.get((name, address))
            if entry is None:
                return
            count, since = entry
            if self.clock() - since >= self.seconds:
                del self._pairs[(name, address)]
                return
        if count >= self.threshold:
            raise LockedOut()

    def failed(self, name: str, address: str) -> None:
        """Count one failed login for the pair."""
        if self.threshold <= 0:
            return
        now = self.clock()
        with self._lock:
            count, since = self._pairs.pop((name, address), (0, now))
            if now - since >= self.seconds:
                count, since = 0, now
            self._pairs[(name, address)] = (count + 1, since)
            while len(self._pairs) > MAX_PAIRS:
                self._pairs.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        """A correct password clears the pair."""
        with self._lock:
            self._pairs.pop((name, address), None)
