"""settee.client attachments against a live settee: file objects streamed up and down (SQLite,
PostgreSQL)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

import pytest
from live import LiveServer
from settee.client import Conflict, Database, NotFound, Server
from test_client import BACKENDS, need, new_name, settee_server

pytestmark = pytest.mark.live
NAME = "attachments"

@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with settee_server(request, tmp_path_factory.mktemp(f"client-{NAME}-{request.param}"),
                       request.param) as server:
        yield server


@pytest.fixture
def server(live: LiveServer) -> Iterator[Server]:
    with Server(live.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def db(server: Server) -> Database:
    return server.create(new_name())


# -- attachments --------------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A non-seekable stream of `size` bytes, produced as read (so the upload is chunked)."""

    def __init__(self, size: int, make: Callable[[int], bytes]) -> None:
        self.left, self.make, self.sent = size, make, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, 65536)
        buffer[:n] = self.make(self.sent)[:n].ljust(n, b"-")
        self.left -= n
        self.sent += n
        return n


def test_attachments_stream_both_ways(live: LiveServer, db: Database) -> None:
    need(live, "attachments")
    payload = bytes(range(256)) * 4096  # 1 MiB
    rev = db.put_attachment("doc", "blob.bin", io.BytesIO(payload))
    assert rev.startswith("1-")
    with db.open_attachment("doc", "blob.bin") as reader:
        assert reader.content_type == "application/octet-stream"
        assert reader.length == len(payload)
        parts = []
        while chunk := reader.read(100_000):
            parts.append(chunk)
    assert b"".join(parts) == payload and len(parts) > 1
    stream = Trickle(3 * 1024 * 1024 + 7, lambda pos: pos.to_bytes(8, "big") * 8192)
    # a binary stream as put_attachment reads it (RawIOBase is not a typing.BinaryIO)
    rev2 = db.put_attachment("doc", "dir/name é.txt", cast(BinaryIO, stream), "text/plain")
    assert rev2.startswith("2-")
    with db.open_attachment("doc", "dir/name é.txt") as reader:
        data = reader.read()
    assert len(data) == 3 * 1024 * 1024 + 7 and reader.closed
    stubs = db["doc"]["_attachments"]
    assert stubs["blob.bin"]["length"] == len(payload)
    assert stubs["dir/name é.txt"]["content_type"].startswith("text/plain")
    with pytest.raises(Conflict) as exc:
        db.put_attachment("doc", "x", b"late", rev=rev)
    assert exc.value.current_rev == rev2
    rev3 = db.delete_attachment("doc", "blob.bin")
    assert rev3.startswith("3-") and "blob.bin" not in db["doc"]["_attachments"]
    with pytest.raises(NotFound):
        db.open_attachment("doc", "blob.bin")


def test_an_attachment_read_halfway_frees_its_connection(live: LiveServer, db: Database) -> None:
    need(live, "attachments")
    db.put_attachment("half", "a", b"z" * 2_000_000)
    for _ in range(5):
        with db.open_attachment("half", "a") as reader:
            assert reader.read(10) == b"z" * 10
    assert db["half"]["_id"] == "half"
