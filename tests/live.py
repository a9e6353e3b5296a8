"""`LiveServer`: a real `settee serve` (or a bare gunicorn) on a free loopback port, for wire tests.

Not a test module: test files `import live` (pytest puts `tests/` on `sys.path`, since it has no
`__init__.py`). The server runs in a session of its own, with stdout (gunicorn's access log) and
stderr captured to files in `workdir` so a failed start or test can show what the server said.
`SETTEE_*` variables of the calling environment never leak into the server.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

HOST = "127.0.0.1"
START_TIMEOUT = 20.0  # seconds for the first `/_up` to answer
STOP_TIMEOUT = 15.0  # seconds after SIGTERM before the whole process group is killed
PORT_ATTEMPTS = 3  # a free port can be taken between choosing it and gunicorn binding it


class StartError(RuntimeError):
    """The server exited, or `/_up` never answered in time; the message ends with its stderr."""


@dataclass
class Reply:
    """One HTTP response: status, headers as received, and the whole body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any `SETTEE_*` variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETTEE_")}
    env.update(extra or {})
    return env


def request(url_or_port: str | int, method: str, raw_path: str, body: bytes | str | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Reply:
    """Send one request with `raw_path` exactly as given on the wire (no re-encoding)."""
    port = url_or_port if isinstance(url_or_port, int) else int(url_or_port.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        conn.request(method, raw_path, body=data, headers=all_headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


class LiveServer:
    """A server process on a free loopback port; use as a context manager or `start`/`stop`."""

    def __init__(self, argv_for: Callable[[str], list[str]], workdir: Path, *,
                 env: Mapping[str, str] | None = None, name: str = "settee") -> None:
        self.argv_for = argv_for  # the command line for a `host:port`
        self.workdir = Path(workdir)
        self.env = server_environ(env)
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = self.workdir / f"{name}.stdout.log"
        self.stderr_path = self.workdir / f"{name}.stderr.log"

    # -- the two kinds of server --------------------------------------------------------------

    @classmethod
    def settee(cls, workdir: Path, *, database_url: str | None = None, workers: int = 1,
               threads: int = 4, args: Iterable[str] = (),
               env: Mapping[str, str] | None = None) -> LiveServer:
        """`python -m settee.server.cli serve` on SQLite in `workdir/data`, or `database_url`."""
        store = ["--database-url", database_url] if database_url \
            else ["--data-dir", str(Path(workdir) / "data")]
        extra = list(args)

        def argv(bind: str) -> list[str]:
            return [sys.executable, "-m", "settee.server.cli", "serve", "--bind", bind, *store,
                    "--workers", str(workers), "--threads", str(threads), *extra]
        return cls(argv, workdir, env=env, name="settee")

    @classmethod
    def gunicorn(cls, workdir: Path, app: str = "settee.server:create_app()", *,
                 args: Iterable[str] = (), env: Mapping[str, str] | None = None) -> LiveServer:
        """A bare `gunicorn APP`, configured by `SETTEE_*` variables in `env`."""
        extra = list(args)

        def argv(bind: str) -> list[str]:
            return [sys.executable, "-m", "gunicorn", "--bind", bind, *extra, app]
        return cls(argv, workdir, env=env, name="gunicorn")

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start on a free port and wait until `/_up` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_up(timeout)
                return self
            except StartError:
                in_use = "in use" in self.stderr()
                self.stop()
                if not in_use or attempt == PORT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self) -> None:
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv_for(f"{HOST}:{self.port}"), stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, env=self.env, start_new_session=True)

    def _wait_up(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"{self.name} exited with {self.proc.returncode}\n"
                                 + self.stderr())
            try:
                if request(self.port, "GET", "/_up", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise StartError(f"{self.name} did not answer /_up within {timeout} s\n" + self.stderr())

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL to the server's own process group; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:  # workers of a master that died or hung: the group is the one this object started
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- talking to it ------------------------------------------------------------------------

    def request(self, method: str, raw_path: str, body: bytes | str | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Reply:
        """One request on a new connection, `raw_path` sent as given."""
        return request(self.port, method, raw_path, body, headers, timeout)

    def stderr(self) -> str:
        """What the server wrote to stderr so far (gunicorn's error log and tracebacks)."""
        return _read(self.stderr_path)

    def stdout(self) -> str:
        """What the server wrote to stdout so far (the access log)."""
        return _read(self.stdout_path)

    def worker_pids(self) -> list[int]:
        """The master's child processes (Linux `/proc`; empty elsewhere)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []


    @staticmethod
    def open_files(pid: int) -> list[str]:
        """What a process has open, as `/proc/PID/fd` links (Linux; empty elsewhere)."""
        fd_dir = Path(f"/proc/{pid}/fd")
        links = []
        try:
            for fd in fd_dir.iterdir():
                try:
                    links.append(os.readlink(fd))
                except OSError:
                    pass  # closed meanwhile
        except OSError:
            return []
        return links


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
