"""A real disk full: SQLite on a 20 MiB tmpfs, PostgreSQL in a tablespace on one (test 4)."""

# A live server takes documents of 1 KB to 1 MB and attachments until its store's disk is full
# and it answers 507 `insufficient_storage` several times in a row. Then: no other 5xx was seen,
# no worker died, every acknowledged write reads back at its rev (before and after a restart,
# or a kill -9 of the whole server at disk full), the store's rows are whole (`INV`, SQLite's
# `integrity_check`), and once a filler file placed on the tmpfs first is removed, writes succeed
# again. On PostgreSQL only the database's tables and indexes live on the tmpfs (its WAL stays on
# the main disk): what fills up is relation extension, SQLSTATE 53100 "could not extend file".
#
# Mounting needs root (or CAP_SYS_ADMIN): without it the tests skip and say so.

from __future__ import annotations

import base64
import hashlib
import json
import pwd
import random
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import reliability
import sqlalchemy as sa
from live import LiveServer, Reply
from reliability import StoreView, error_shape_problem, figure, kill_whole_server

pytest_plugins = ["reliability_report"]

pytestmark = pytest.mark.live

TMPFS_SIZE = "20m"
FILLER_BYTES = 3 * 1024 * 1024  # on the tmpfs before the server starts; removed to free space
SIZES = [1_000, 10_000, 100_000, 1_000_000]  # bytes of a document's payload, in turn
ATTACHMENT_EVERY = 4  # every 4th write is an attachment PUT on a new document
MAX_WRITES = 2_000  # the filling loop's bound (~100 writes fill 20 MiB)
FILL_TIMEOUT = 180.0  # seconds, the filling loop's other bound
FULL_IN_A_ROW = 6  # consecutive 507s that say the disk is full (small writes may still fit)
STOPS = ["restart", "kill -9"]


# -- a small disk ----------------------------------------------------------------------------------

@contextmanager
def tmpfs(size: str, owner: str | None = None) -> Iterator[Path]:
    """A fresh tmpfs of `size` under /tmp (its root owned by the user `owner`), unmounted
    afterwards; the test skips when this process may not mount one."""
    point = Path(tempfile.mkdtemp(prefix="settee-full-"))
    options = f"size={size}"
    if owner is not None:
        try:
            user = pwd.getpwnam(owner)
        except KeyError:
            point.rmdir()
            pytest.skip(f"no user {owner!r} here: the database server runs elsewhere and could "
                        f"not use a tmpfs of this machine")
        options += f",uid={user.pw_uid},gid={user.pw_gid},mode=0700"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        point.rmdir()
        pytest.skip(f"a real disk full needs a tmpfs, and mount failed here (root or "
                    f"CAP_SYS_ADMIN needed): {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)
        point.rmdir()


def place_filler(directory: Path) -> Path:
    """A file of FILLER_BYTES on the small disk: removing it frees that much."""
    path = directory / "filler"
    path.write_bytes(random.Random(0).randbytes(FILLER_BYTES))
    return path


@contextmanager
def pg_database_on(admin: sa.Engine, location: Path) -> Iterator[str]:
    """A new PostgreSQL database whose tables live in a tablespace at `location`; the store URL.
    Database and tablespace are dropped afterwards, whatever happened."""
    tag = uuid.uuid4().hex[:10]
    space, name = f"settee_full_{tag}", f"settee_full_{tag}"
    with admin.connect() as conn:
        try:
            conn.exec_driver_sql(f"CREATE TABLESPACE {space} LOCATION '{location}'")
        except sa.exc.DBAPIError as exc:  # e.g. a server on another machine cannot see it
            pytest.skip(f"PostgreSQL cannot use {location} as a tablespace: {exc.orig}")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TABLESPACE {space}')
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        # Free the space first: while the tablespace is full, PostgreSQL's checkpoints fail
        # for the whole cluster (other tests' CREATE DATABASE included) until it can write.
        (location / "filler").unlink(missing_ok=True)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP TABLESPACE IF EXISTS {space}")


# -- writing until full ----------------------------------------------------------------------------

def payload(n: int, size: int) -> bytes:
    """`size` incompressible bytes (bodies over 4 KB are compressed), the same for the same n."""
    return random.Random(n).randbytes(size)


@dataclass
class Writes:
    """The writes sent to one database: what was acknowledged, and every answer that was wrong."""

    server: LiveServer
    db: str
    docs: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # id -> rev, n, size
    atts: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> rev, md5 of bytes
    full: int = 0  # 507 answers
    problems: list[str] = field(default_factory=list)

    def one(self, n: int) -> Reply:
        """Write number n: a document, or every ATTACHMENT_EVERY-th an attachment."""
        size = SIZES[n % len(SIZES)]
        doc_id = f"w{n:05d}"
        data = payload(n, size)
        if n % ATTACHMENT_EVERY == ATTACHMENT_EVERY - 1:
            reply = self.server.request("PUT", f"/{self.db}/{doc_id}/blob.bin", data,
                                        {"Content-Type": "application/octet-stream"}, timeout=60)
            if self.acked(reply):
                self.atts[doc_id] = (reply.json()["rev"], hashlib.md5(data).hexdigest())
            return reply
        body = json.dumps({"n": n, "data": base64.b64encode(data).decode()})
        reply = self.server.request("PUT", f"/{self.db}/{doc_id}", body, timeout=60)
        if self.acked(reply):
            self.docs[doc_id] = (reply.json()["rev"], n, size)
        return reply

    def acked(self, reply: Reply) -> bool:
        """True for a 201; counts a 507 and records anything else (or a badly shaped error)."""
        if reply.status == 201:
            return True
        shape = error_shape_problem(reply)
        if reply.status == 507 and shape is None and \
                reply.json()["error"] == "insufficient_storage":
            self.full += 1
        else:
            self.problems.append(shape or f"{reply.status} {reply.body[:300]!r}")
        return False

    def fill(self) -> int:
        """Write until FULL_IN_A_ROW answers in a row are 507 (bounded); the writes sent."""
        in_a_row, sent = 0, 0
        deadline = time.monotonic() + FILL_TIMEOUT
        while in_a_row < FULL_IN_A_ROW and sent < MAX_WRITES and time.monotonic() < deadline:
            in_a_row = in_a_row + 1 if self.one(sent).status == 507 else 0
            sent += 1
        return sent

    def unreadable(self) -> list[str]:
        """Acknowledged writes that do not read back at their rev with their bytes."""
        wrong = []
        for doc_id, (rev, n, size) in self.docs.items():
            got = self.server.request("GET", f"/{self.db}/{doc_id}?rev={rev}", timeout=60)
            if got.status != 200 or base64.b64decode(got.json()["data"]) != payload(n, size):
                wrong.append(f"{doc_id} at {rev}: {got.status}")
        for doc_id, (rev, digest) in self.atts.items():
            got = self.server.request("GET", f"/{self.db}/{doc_id}/blob.bin?rev={rev}",
                                      timeout=60)
            if got.status != 200 or hashlib.md5(got.body).hexdigest() != digest:
                wrong.append(f"{doc_id}/blob.bin at {rev}: {got.status}")
        return wrong


# -- the check, on either backend ------------------------------------------------------------------

def check_disk_full(backend: str, url: str, workdir: Path, filler: Path, stop: str) -> None:
    """Fill the disk through a server on the store at `url`, stop it (`restart` or `kill -9`),
    restart it, check, then free space and write again."""
    server = LiveServer.settee(workdir, database_url=url, workers=2, threads=4)
    view = StoreView(url)
    try:
        fill_stop_and_check(backend, server, view, filler, stop)
    finally:
        server.stop()
        view.close()


def fill_stop_and_check(backend: str, server: LiveServer, view: StoreView, filler: Path,
                        stop: str) -> None:
    """The steps of `check_disk_full` once its server and store view exist."""
    server.start()
    db = "full_" + uuid.uuid4().hex[:8]
    assert server.request("PUT", f"/{db}").status == 201
    workers = set(server.worker_pids())
    writes = Writes(server, db)
    sent = writes.fill()
    print(f"\n{backend}: {sent} writes, {len(writes.docs)} docs and {len(writes.atts)} "
          f"attachments acknowledged, {writes.full} answered 507")
    assert writes.problems == [], writes.problems[:5]
    assert writes.full >= FULL_IN_A_ROW, f"the disk never filled in {sent} writes"
    assert set(server.worker_pids()) == workers, "a worker died at disk full"
    assert server.request("GET", "/_up").status == 200
    assert writes.unreadable() == []
    if stop == "kill -9":
        kill_whole_server(server)
    else:
        server.stop()
    server.start()  # still full
    lost = writes.unreadable()
    figure(backend, "writes answered 507 on a full tmpfs", writes.full)
    figure(backend, "acked writes lost on a full tmpfs", len(lost))
    assert lost == []
    assert view.invariant_problems(db) == []
    filler.unlink()
    after = writes.one(MAX_WRITES), writes.one(MAX_WRITES + ATTACHMENT_EVERY - 1)
    assert [reply.status for reply in after] == [201, 201], [r.body[:300] for r in after]
    assert writes.unreadable() == []
    assert view.invariant_problems(db) == []


@pytest.mark.parametrize("stop", STOPS)
def test_disk_full_sqlite(tmp_path: Path, stop: str) -> None:
    with tmpfs(TMPFS_SIZE) as disk:
        filler = place_filler(disk)
        url = f"sqlite:///{disk}/settee.sqlite"
        reliability.create_schema_first(url)
        check_disk_full("sqlite", url, tmp_path, filler, stop)


@pytest.mark.parametrize("stop", STOPS)
def test_disk_full_postgres(tmp_path: Path, stop: str, pg_admin: sa.Engine) -> None:
    with tmpfs(TMPFS_SIZE, owner="postgres") as disk, pg_database_on(pg_admin, disk) as url:
        check_disk_full("postgres", url, tmp_path, place_filler(disk), stop)
