"""Group commit (`store/commits.py`): shared transactions, lone refusals, late joins."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from settee.store import Store, commits
from settee.store.commits import MAX_BATCH
from settee.store.engine import Tx
from settee.store.errors import Conflict
from settee.store.writes import Edit

WAIT = 10.0  # seconds any one step may take before the test fails instead of hanging


def _edit(doc_id: str, n: int) -> Edit:
    return Edit(doc_id, {"n": n}, b'{"n":%d}' % n)


def _put(store: Store, db: str, doc_id: str, n: int) -> Any:
    """One interactive write through the store's commit queue, as the server makes it."""
    return store.db(db).write([_edit(doc_id, n)], new_edits=True)


def test_concurrent_writes_each_get_their_own_result(store: Store) -> None:
    store.create_db("g")
    results: dict[int, Any] = {}

    def writer(k: int) -> None:
        results[k] = _put(store, "g", f"d{k:03d}", k)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(results) == list(range(40))
    assert all(r[0].ok and r[0].id == f"d{k:03d}" for k, r in results.items())
    assert store.db_info("g").doc_count == 40


def test_a_refused_write_rolls_back_alone(store: Store) -> None:
    """In one batch: a write that raises rolls back to its savepoint; the others commit."""
    store.create_db("r")
    gate = threading.Event()

    def first(tx: Tx) -> str:
        gate.wait(WAIT)  # hold the lead until the others have queued
        return "first"

    def refused(tx: Tx) -> str:
        store.db("r").write([_edit("lost", 1)], new_edits=True)  # joins this transaction
        raise Conflict()

    def kept(tx: Tx) -> str:
        store.db("r").write([_edit("kept", 1)], new_edits=True)
        return "kept"

    outcomes = _queued_behind(store, "r", gate, first, {"refused": refused, "kept": kept})
    assert outcomes["first"] == "first" and outcomes["kept"] == "kept"
    assert isinstance(outcomes["refused"], Conflict)
    assert "kept" in store.db("r") and "lost" not in store.db("r")


def test_writes_queued_while_the_leader_waits_join_its_transaction(store: Store) -> None:
    """The batch closes at commit: writes that arrive while the leader works share its commit."""
    store.create_db("a")
    store.create_db("b")
    queue = store.commits
    gate = threading.Event()
    seen: dict[str, Tx] = {}

    def leader(tx: Tx) -> Tx:
        gate.wait(WAIT)
        return tx  # the transaction object itself: held, so compared by identity below

    def late(name: str) -> Any:
        return lambda tx: tx

    def run(name: str, key: str, fn: Any) -> None:
        seen[name] = queue.submit(key, fn)

    first = threading.Thread(target=run, args=("lead", "b", leader))
    first.start()
    _wait_until(lambda: queue._leading)
    # Two late writes: one to "b" (sorts at the locked db: joins), one to "a" (sorts before the
    # locked db: would break the lock order, so it waits for the next transaction).
    joins = threading.Thread(target=run, args=("b-late", "b", late("b")))
    waits = threading.Thread(target=run, args=("a-late", "a", late("a")))
    joins.start()
    waits.start()
    _wait_until(lambda: len(queue._pending) == 2)
    gate.set()
    for t in (first, joins, waits):
        t.join(WAIT)
    assert seen["b-late"] is seen["lead"]
    assert seen["a-late"] is not seen["lead"]


def test_a_batch_never_exceeds_its_cap(store: Store) -> None:
    store.create_db("c")
    queue = store.commits
    gate = threading.Event()
    tx_of: dict[int, Tx] = {}

    def leader(tx: Tx) -> Tx:
        gate.wait(WAIT)
        return tx

    def run(k: int, fn: Any) -> None:
        tx_of[k] = queue.submit("c", fn)

    first = threading.Thread(target=run, args=(-1, leader))
    first.start()
    _wait_until(lambda: queue._leading)
    count = MAX_BATCH + 10
    threads = [threading.Thread(target=run, args=(k, lambda tx: tx)) for k in range(count)]
    for t in threads:
        t.start()
    _wait_until(lambda: len(queue._pending) == count)
    gate.set()
    for t in [first, *threads]:
        t.join(WAIT)
    assert len(tx_of) == count + 1
    shared = sum(1 for k in range(count) if tx_of[k] is tx_of[-1])
    assert shared == MAX_BATCH - 1  # the leader's own write plus 63 late ones


def _writer(store: Store, db: str, doc_id: str) -> Any:
    """A write function that saves `doc_id` inside the transaction it is given."""
    return lambda tx: _put(store, db, doc_id, 1)


def _queued_behind(store: Store, db: str, gate: threading.Event, lead: Any,
                   others: dict[str, Any]) -> dict[str, Any]:
    """Submit `lead` (which holds the lead until `gate` opens), queue `others` behind it, open
    the gate; every outcome by name ("first" for `lead`), a refusal as its `Conflict`."""
    queue = store.commits
    outcomes: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        try:
            outcomes[name] = queue.submit(db, fn)
        except Conflict as exc:
            outcomes[name] = exc

    leader = threading.Thread(target=run, args=("first", lead))
    leader.start()
    _wait_until(lambda: queue._leading)
    threads = [threading.Thread(target=run, args=item) for item in others.items()]
    for t in threads:
        t.start()
    _wait_until(lambda: len(queue._pending) == len(others))
    gate.set()
    for t in [leader, *threads]:
        t.join(WAIT)
    return outcomes


def _wait_until(check: Any) -> None:
    """Poll `check` until true; fail after WAIT seconds."""
    event = threading.Event()
    for _ in range(int(WAIT / 0.002)):
        if check():
            return
        event.wait(0.002)
    pytest.fail("condition not reached in time")


def test_a_refused_first_write_leaves_the_rest_of_its_batch_to_commit(store: Store) -> None:
    """The first write of a transaction has no savepoint: when it is refused, the transaction
    rolls back (with whatever the refused write did) and the queued writes commit in another."""
    store.create_db("f")
    gate = threading.Event()

    def refused_first(tx: Tx) -> str:
        store.db("f").write([_edit("lost", 1)], new_edits=True)
        gate.wait(WAIT)
        raise Conflict()

    outcomes = _queued_behind(store, "f", gate, refused_first,
                              {f"k{k}": _writer(store, "f", f"k{k}") for k in range(3)})
    assert isinstance(outcomes["first"], Conflict)
    assert all(outcomes[f"k{k}"][0].ok for k in range(3))
    db = store.db("f")
    assert "lost" not in db and all(f"k{k}" in db for k in range(3))
    assert store.db_info("f").doc_count == 3


@pytest.mark.parametrize("with_stub", [False, True])
def test_queued_document_writes_join_and_keep_their_own_outcomes(
        app: Any, client: Any, fresh_db: str, monkeypatch: pytest.MonkeyPatch,
        with_stub: bool) -> None:
    """PUTs queued behind a busy leader run as one joined write: each still gets its own
    answer, a stale rev is a 409 for that request alone, and a missing attachment stub (which
    refuses a joined group as a whole) is a 412 for its request while the rest still commit."""
    old = client.put_json(f"/{fresh_db}/old", {"v": 0}, status=201).json["rev"]
    client.put_json(f"/{fresh_db}/old", {"_rev": old, "v": 1}, status=201)
    queue = app.store.commits
    gate = threading.Event()
    answers: dict[str, Any] = {}
    joined: list[int] = []
    real = commits._apply_joined

    def counted(tx: Tx, group: list[Any]) -> None:
        joined.append(len(group))
        real(tx, group)
    monkeypatch.setattr(commits, "_apply_joined", counted)

    def put(name: str, body: dict[str, Any]) -> None:
        answers[name] = client.put_json(f"/{fresh_db}/{name}", body, status="*")

    blocker = threading.Thread(target=queue.submit, args=(fresh_db, lambda tx: gate.wait(WAIT)))
    blocker.start()
    _wait_until(lambda: queue._leading)
    bodies: dict[str, dict[str, Any]] = {f"new{k}": {"k": k} for k in range(6)}
    bodies["old"] = {"_rev": old, "v": 2}  # stale: "old" is at 2-... now
    if with_stub:
        bodies["stub"] = {"_attachments": {"a.txt": {"stub": True}}}  # nothing to stub from
    writers = [threading.Thread(target=put, args=item) for item in bodies.items()]
    for t in writers:
        t.start()
    _wait_until(lambda: len(queue._pending) == len(bodies))
    gate.set()
    for t in [blocker, *writers]:
        t.join(WAIT)
    assert answers["old"].status_int == 409
    if with_stub:
        assert answers["stub"].status_int == 412
    for k in range(6):
        answer = answers[f"new{k}"]
        assert answer.status_int == 201, answer.body
        assert client.get(f"/{fresh_db}/new{k}").json == {
            "_id": f"new{k}", "_rev": answer.json["rev"], "k": k}
    info = client.get(f"/{fresh_db}").json
    assert info["doc_count"] == 7
    assert joined == [len(bodies)]  # one group of them all (with the stub: refused whole,
    # then run one by one)
