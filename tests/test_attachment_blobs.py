"""Attachment bytes in the store: shared content-addressed blobs, chunk rows read only where a
range needs them, garbage collection at compaction, and size limits (chunked bodies included)
that store nothing when they refuse.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from attkit import blob_count, digest, inline, related_body, send, table_count
from conftest import Client
from settee.server.settings import Settings
from settee.store import blobs, maintenance, sql


@pytest.fixture
def client(module_app: Any) -> Client:
    """This module's client (overrides conftest's, which builds a store per test)."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


@pytest.fixture
def limited(module_app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module's app with small limits for one test: requests 200 kB, attachments 100 kB,
    documents 1 kB."""
    values = module_app.settings.as_dict()
    values.update(max_http_request_size=200_000, max_attachment_size=100_000,
                  max_document_size=1000)
    monkeypatch.setattr(module_app, "settings", Settings(values))
    return module_app


def unique(size: int) -> bytes:
    """Bytes no other test stores."""
    seed = uuid.uuid4().bytes
    return (seed * (size // 16 + 1))[:size]


def _chunks(app: Any, data: bytes) -> int:
    return table_count(app, "settee_blob_chunks", "WHERE digest = ?", (digest(data),))


def _put(client: Client, path: str, data: bytes, **kw: Any) -> Any:
    return send(client, "PUT", path, data, {"Content-Type": "application/octet-stream"}, **kw)


# -- sharing --------------------------------------------------------------------------------------

def test_the_same_bytes_are_one_blob_in_chunk_rows(client: Client, module_app: Any,
                                                   fresh_db: str) -> None:
    data = unique(200_000)
    assert _put(client, f"/{fresh_db}/one/a", data).status_int == 201
    client.put_json(f"/{fresh_db}/two", {"_attachments": {"b": inline(data)}})
    other = "db_" + uuid.uuid4().hex[:8]
    client.put(f"/{other}")
    assert _put(client, f"/{other}/three/c", data).status_int == 201
    assert blob_count(module_app, data) == 1
    assert _chunks(module_app, data) == math.ceil(len(data) / blobs.CHUNK_SIZE) == 4
    assert table_count(module_app, "settee_atts", "WHERE digest = ?", (digest(data),)) == 3
    for path in (f"/{fresh_db}/one/a", f"/{fresh_db}/two/b", f"/{other}/three/c"):
        assert client.get(path).body == data


def test_a_range_reads_only_the_chunks_it_covers(client: Client, module_app: Any,
                                                 fresh_db: str) -> None:
    data = unique(5 * blobs.CHUNK_SIZE)
    _put(client, f"/{fresh_db}/doc/a", data)
    with module_app.store.engine.transaction(write=True) as conn:  # break chunks 0 and 4
        sql.execute(conn, "DELETE FROM settee_blob_chunks WHERE digest = ? AND idx IN (0, 4)",
                    (digest(data),))
    lo, hi = blobs.CHUNK_SIZE + 10, 4 * blobs.CHUNK_SIZE - 1
    res = client.get(f"/{fresh_db}/doc/a", headers={"Range": f"bytes={lo}-{hi}"})
    assert res.status_int == 206 and res.body == data[lo:hi + 1]
    with pytest.raises(blobs.BlobMissing):  # a whole read notices, and never ends short
        list(module_app.store.db(fresh_db).attachment_bytes(
            module_app.store.db(fresh_db).attachment("doc", "a")))


def test_md5_alone_never_dedupes_different_bytes(client: Client, module_app: Any,
                                                 fresh_db: str) -> None:
    data = unique(100)
    with module_app.store.engine.transaction(write=True) as conn:  # a crafted md5 twin
        sql.execute(conn, "INSERT INTO settee_blobs (digest, length, sha256, touched) "
                    "VALUES (?, ?, ?, ?)", (digest(data), 100, "0" * 64, 0.0))
    res = _put(client, f"/{fresh_db}/doc/a", data)
    assert res.status_int == 400
    assert res.json["reason"] == "Attachment data has the md5 digest of different stored data."
    client.get(f"/{fresh_db}/doc", status=404)


# -- garbage collection ---------------------------------------------------------------------------

def _drop_attachment(client: Client, db: str, docid: str) -> None:
    rev = client.get(f"/{db}/{docid}").json["_rev"]
    client.put_json(f"/{db}/{docid}", {"_rev": rev, "v": "no attachments now"})


def test_compaction_removes_blobs_nobody_uses_after_a_grace_period(
        client: Client, module_app: Any, fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gone, kept = unique(150_000), unique(1000)
    _put(client, f"/{fresh_db}/a/x", gone)
    client.put_json(f"/{fresh_db}/b", {"_attachments": {"y": inline(kept)}})
    client.put_json(f"/{fresh_db}/c", {"_attachments": {"y": inline(kept)}})
    _drop_attachment(client, fresh_db, "a")
    _drop_attachment(client, fresh_db, "b")
    client.post_json(f"/{fresh_db}/_compact", {}, status=202)
    assert blob_count(module_app, gone) == 1  # unreferenced now, but inside the grace period
    monkeypatch.setattr(maintenance, "BLOB_GRACE", 0.0)
    client.post_json(f"/{fresh_db}/_compact", {}, status=202)
    assert blob_count(module_app, gone) == 0 and _chunks(module_app, gone) == 0
    assert blob_count(module_app, kept) == 1  # still the attachment of `c`
    assert client.get(f"/{fresh_db}/c/y").body == kept


def test_a_write_that_reuses_a_blob_keeps_it_from_collection(
        client: Client, module_app: Any, fresh_db: str) -> None:
    data = unique(3000)
    _put(client, f"/{fresh_db}/a/x", data)
    _drop_attachment(client, fresh_db, "a")
    client.post_json(f"/{fresh_db}/_compact", {}, status=202)
    with module_app.store.engine.transaction(write=True) as conn:  # long unused...
        sql.execute(conn, "UPDATE settee_blobs SET touched = 0 WHERE digest = ?", (digest(data),))
    _put(client, f"/{fresh_db}/b/x", data)  # ...and reused just now, by a racing write
    assert blobs.collect(module_app.store.engine, grace=60) == 0
    assert client.get(f"/{fresh_db}/b/x").body == data


def test_deleted_databases_and_purged_revisions_free_their_blobs(
        client: Client, module_app: Any, fresh_db: str) -> None:
    in_db, purged = unique(500), unique(600)
    other = "db_" + uuid.uuid4().hex[:8]
    client.put(f"/{other}")
    _put(client, f"/{other}/d/x", in_db)
    rev = _put(client, f"/{fresh_db}/p/x", purged).json["rev"]
    client.delete(f"/{other}")
    client.post_json(f"/{fresh_db}/_purge", {"p": [rev]}, status=201)
    assert blobs.collect(module_app.store.engine, grace=0) >= 2
    assert blob_count(module_app, in_db) == blob_count(module_app, purged) == 0


# -- limits ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True])
def test_uploads_over_the_limits_are_413_and_store_nothing(
        client: Client, limited: Any, fresh_db: str, chunked: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = unique(150_000)
    res = _put(client, f"/{fresh_db}/doc/big.bin", data, chunked=chunked)
    assert res.status_int == 413
    assert res.json == {"error": "attachment_too_large", "reason": "big.bin"}
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    huge = unique(250_000)
    values = limited.settings.as_dict()
    monkeypatch.setattr(limited, "settings", Settings({**values, "max_attachment_size": 10**6}))
    res = _put(client, f"/{fresh_db}/doc/huge.bin", huge, chunked=chunked)
    assert res.status_int == 413 and res.json["error"] == "too_large"
    monkeypatch.setattr(limited, "settings", Settings(values))
    client.get(f"/{fresh_db}/doc", status=404)
    assert blob_count(limited, data) == blob_count(limited, huge) == 0
    fits = unique(90_000)
    assert _put(client, f"/{fresh_db}/doc/fits.bin", fits, chunked=chunked).status_int == 201
    assert client.get(f"/{fresh_db}/doc/fits.bin").body == fits


def test_gzip_bombs_are_held_to_the_decoded_limit(client: Client, limited: Any,
                                                  fresh_db: str) -> None:
    import gzip
    res = send(client, "PUT", f"/{fresh_db}/doc/bomb", gzip.compress(b"\0" * 10_000_000),
               {"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    assert res.status_int == 413 and res.json["error"] == "attachment_too_large"


def test_inline_and_multipart_attachments_have_the_same_limits(client: Client, limited: Any,
                                                               fresh_db: str) -> None:
    big = unique(120_000)
    res = client.put_json(f"/{fresh_db}/d", {"_attachments": {"i": inline(big)}}, status=413)
    assert res.json == {"error": "attachment_too_large", "reason": "i"}
    res = client.post_json(f"/{fresh_db}/_bulk_docs",
                           {"docs": [{"_id": "d", "_attachments": {"i": inline(big)}}]},
                           status=413)
    assert res.json["error"] == "attachment_too_large"
    body, ctype = related_body({"_attachments": {"m": {"follows": True}}}, [big])
    res = send(client, "PUT", f"/{fresh_db}/d", body, {"Content-Type": ctype})
    assert res.status_int == 413 and res.json == {"error": "attachment_too_large", "reason": "m"}
    client.get(f"/{fresh_db}/d", status=404)
    # max_document_size counts the fields only, never the attachments (as CouchDB)
    small = unique(20_000)
    client.put_json(f"/{fresh_db}/d", {"v": 1, "_attachments": {"s": inline(small)}}, status=201)
    res = client.put_json(f"/{fresh_db}/e", {"v": "x" * 2000, "_attachments": {
        "s": inline(b"x")}}, status=413)
    assert res.json == {"error": "document_too_large", "reason": "e"}
