"""A lean HTTP/1.1 client: request bytes, a sans-IO response parser, and a blocking connection.

`http.client` spends tens of microseconds of Python per request on header objects; a benchmark on a
two-core machine cannot afford that, because every cycle the client burns is taken from the server
it measures. Here a request is one bytes object, and the parser reads only what it must from a
response: the status, the framing (`Content-Length`, chunked, or read-to-close) and whether the
server will close. The parser does no I/O, so the same code serves the blocking `Connection` used
for setup and the non-blocking event loop in `eventloop.py` that generates the load.
"""

from __future__ import annotations

import base64
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

RECV_SIZE = 65536

Request = tuple[str, str, bytes | None]  # method, path below the target's prefix, JSON body


class HTTPError(Exception):
    """The peer broke the HTTP/1.1 framing."""


class Dropped(ConnectionError):
    """The server closed the connection; `idle` when no byte of the response had arrived."""

    def __init__(self, *, idle: bool) -> None:
        super().__init__("server closed the connection" + (" before answering" if idle else ""))
        self.idle = idle


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port, TLS, a path prefix and an optional basic-auth header."""

    host: str
    port: int
    tls: bool = False
    prefix: str = ""
    authorization: str | None = None

    @classmethod
    def parse(cls, url: str) -> Target:
        """Read `http[s]://[user:password@]host[:port][/prefix]`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(
            host=parts.hostname,
            port=parts.port or (443 if tls else 80),
            tls=tls,
            prefix=parts.path.rstrip("/"),
            authorization=authorization,
        )

    @property
    def display(self) -> str:
        """The URL without credentials, for printing."""
        scheme = "https" if self.tls else "http"
        user = "<user>@" if self.authorization else ""
        return f"{scheme}://{user}{self._hostport(always=True)}{self.prefix}"

    def _hostport(self, *, always: bool = False) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if not always and self.port == (443 if self.tls else 80):
            return host
        return f"{host}:{self.port}"

    def encoder(self) -> RequestEncoder:
        """A request encoder with this target's Host, prefix and credentials."""
        head = f"Host: {self._hostport()}\r\nAccept: application/json\r\n"
        if self.authorization:
            head += f"Authorization: {self.authorization}\r\n"
        return RequestEncoder(self.prefix, head.encode("latin-1"))

    def connect(self, timeout: float) -> socket.socket:
        """A new blocking socket to the target, TLS-wrapped if the URL was https."""
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        return sock


@dataclass(frozen=True)
class RequestEncoder:
    """Turns (method, path, body) into the bytes of one keep-alive request."""

    prefix: str
    head: bytes

    def encode(self, method: str, path: str, body: bytes | None = None) -> bytes:
        line = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
        if body is None:
            return line + self.head + b"\r\n"
        length = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return line + self.head + length.encode("ascii") + body


@dataclass(frozen=True)
class Response:
    """A status code, the whole (de-chunked) body, and whether the connection stays open."""

    status: int
    body: bytes
    keep_alive: bool = True


# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _TO_CLOSE = range(6)


class ResponseParser:
    """Bytes in (`feed`), whole responses out (`next`); keeps what it has not used yet."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (when the connection is replaced)."""
        self.buf = bytearray()
        self._state = _HEAD
        self._status = 0
        self._keep_alive = True
        self._need = 0
        self._parts: list[bytes] = []

    @property
    def started(self) -> bool:
        """Whether any byte of the current response has arrived."""
        return bool(self.buf) or self._state != _HEAD

    def feed(self, data: bytes) -> None:
        self.buf += data

    def eof(self) -> Response:
        """The server closed the connection: the response that ran to the close, or `Dropped`."""
        if self._state != _TO_CLOSE:
            raise Dropped(idle=not self.started)
        response = Response(self._status, bytes(self.buf), keep_alive=False)
        self.reset()
        return response

    def next(self) -> Response | None:
        """The next complete response, or None until more bytes are fed."""
        buf = self.buf
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return None
                head = bytes(buf[:end])
                del buf[: end + 4]
                response = self._start(head)
                if response is not None:
                    return response
            elif state == _LENGTH:
                if len(buf) < self._need:
                    return None
                return self._finish(self._take(self._need))
            elif state == _CHUNK_SIZE:
                line = self._line()
                if line is None:
                    return None
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HTTPError(f"bad chunk size line {line[:40]!r}") from None
                self._need = size
                self._state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                if len(buf) < self._need + 2:
                    return None
                self._parts.append(self._take(self._need))
                if self._take(2) != b"\r\n":
                    raise HTTPError("chunk not followed by CRLF")
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                line = self._line()
                if line is None:
                    return None
                if not line:
                    body = b"".join(self._parts)
                    self._parts = []
                    return self._finish(body)
            else:  # _TO_CLOSE: the body ends when the connection does; see eof()
                return None

    def _start(self, head: bytes) -> Response | None:
        if not head.startswith(b"HTTP/1."):
            raise HTTPError(f"not an HTTP/1.x response: {head[:40]!r}")
        self._status = status = int(head[9:12])
        fields = head.lower() + b"\r\n"
        keep_alive = head.startswith(b"HTTP/1.1")
        connection = _field(fields, b"connection")
        if connection is not None:
            keep_alive = b"close" not in connection and (keep_alive or b"keep-alive" in connection)
        self._keep_alive = keep_alive
        if 100 <= status < 200:
            return None  # an interim response: the real one follows
        if status in (204, 304):
            return self._finish(b"")
        encoding = _field(fields, b"transfer-encoding")
        length = _field(fields, b"content-length")
        if encoding is not None and b"chunked" in encoding:
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._need = int(length)
            self._state = _LENGTH
        else:
            self._state = _TO_CLOSE
        return None

    def _finish(self, body: bytes) -> Response:
        self._state = _HEAD
        return Response(self._status, body, self._keep_alive)

    def _take(self, size: int) -> bytes:
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def _line(self) -> bytes | None:
        end = self.buf.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line


def _field(fields: bytes, name: bytes) -> bytes | None:
    """The value of header `name` in a lower-cased header block ending in CRLF, or None."""
    start = fields.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    return fields[start : fields.find(b"\r\n", start)].strip()


class Connection:
    """A blocking keep-alive connection for setup and checks; reconnects if the server closes it."""

    def __init__(self, target: Target, timeout: float = 60.0) -> None:
        self.target = target
        self.timeout = timeout
        self._encoder = target.encoder()
        self._sock: socket.socket | None = None
        self._parser = ResponseParser()
        self._used = False

    def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        """Send one request (path below the target's prefix) and read its response."""
        data = self._encoder.encode(method, path, body)
        reused = self._used and self._sock is not None
        try:
            return self._exchange(data)
        except Dropped as exc:
            # A keep-alive connection the server dropped while idle fails before any byte of the
            # response arrives; only that case is safe to send again (the request never ran).
            if not (reused and exc.idle):
                raise
            return self._exchange(data)

    def detach(self) -> socket.socket | None:
        """Hand over the open socket (if any) to the caller, who now owns it."""
        sock, self._sock = self._sock, None
        self.close()
        return sock

    def close(self) -> None:
        """Close the socket; the next request opens a new one."""
        sock, self._sock = self._sock, None
        self._parser.reset()
        self._used = False
        if sock is not None:
            sock.close()

    def _exchange(self, data: bytes) -> Response:
        if self._sock is None:
            self._sock = self.target.connect(self.timeout)
        sock, parser = self._sock, self._parser
        try:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                raise Dropped(idle=True) from None
            while (response := parser.next()) is None:
                try:
                    chunk = sock.recv(RECV_SIZE)
                except ConnectionResetError:
                    raise Dropped(idle=not parser.started) from None
                if not chunk:
                    response = parser.eof()
                    break
                parser.feed(chunk)
        except BaseException:
            self.close()
            raise
        self._used = True
        if not response.keep_alive:
            self.close()
        return response
