"""The HTTP API against a naive model of revision trees (reliability.md section 4, test 44)."""

# A hypothesis state machine drives the API in-process: creates, updates with the current, a stale
# or a made-up rev, deletes, mixed `_bulk_docs` (interactive, some large enough to be worked out
# before the write lock, and `new_edits=false` with random rev paths that fork, extend, replay
# and re-root the trees), `_revs_diff`, compaction,
# `_revs_limit` changes and restarts (a new app on the same store). The model (`revmodel.py`)
# computes leaves, the winner, stemming and compaction in the plainest way, not with
# `store/revtree.py`. After every step it compares the status of the step, every document's
# leaves with their bodies and `_revisions` (one `_bulk_get`), `_all_docs` (ids, order, revs,
# total) and the counters and update_seq; for the documents the step touched (all of them after
# a compaction, a `_revs_limit` change or a restart) also the winner with its body, `_revisions`,
# `_conflicts` and `_deleted_conflicts`, `open_revs=all`, and `GET ?rev=` of every rev still in
# the tree (its body, or 404 once compaction or stemming dropped it).
#
# Rev ids of interactive edits are content hashes the model does not compute: it takes them from
# the answers and checks their generation and that they are new.
#
# The machine runs in several processes at once (`multiprocessing`, spawned), each with its own
# app, engine and databases on one shared store: on PostgreSQL the HTTP layer and the driver take
# most of a step, so two processes on two cores do ~1.6x the steps in the same time (on SQLite,
# measured, about as many as one: not explained yet), and the store sees writers in several
# processes as in production. The store does not wait for the disk at commit (PostgreSQL
# `synchronous_commit = off`, SQLite `synchronous = NORMAL`; see `model_store`): this test checks
# logic, not durability.

from __future__ import annotations

import math
import multiprocessing
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import reliability
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from reliability import BACKENDS, call, figure, sized
from revmodel import Model, pos
from settee.server import create_app
from settee.store.writes import PREPARE_MIN_EDITS

pytest_plugins = ["reliability_report"]

IDS = ["_design/d", "alpha", "beta", "gamma"]
# Steps per backend (the 25,000 in CI, 10x under soak), shared by the processes, and steps
# per example. Hypothesis ends some examples early (when their choices fill its buffer): 81-89%
# of examples x steps ran, so each process runs rounds of examples until it has its share. Both
# cores are busy: a PostgreSQL step (~11 requests of ~4 statements through psycopg) takes ~7 ms
# of the pair here, ~3 minutes in CI; a SQLite step ~4 ms, ~1.7 minutes.
STEPS = sized(25_000, 250_000)
EXAMPLE_STEPS = sized(50, 60)
RAN = 0.85  # the share of examples x steps expected to run, to size a round
MAX_ROUNDS = 6
PROCESSES = 2
PROCESS_TIMEOUT = sized(1200, 12000)  # seconds for all the processes of one backend
LIMITS = [1, 2, 3, 5, 1000]


def path_of(doc_id: str) -> str:
    return "/_design/" + doc_id[len("_design/"):] if doc_id.startswith("_design/") else \
        "/" + doc_id


@dataclass
class Tally:
    """What the machines of one process did, and the failure they hit (its traceback)."""

    steps: int = 0
    requests: int = 0
    conflicted: int = 0  # steps that ended with a document holding more than one leaf
    stemmed: int = 0  # revs the model stemmed away
    restarts: int = 0
    failure: str | None = None

    def __add__(self, other: Tally) -> Tally:
        """Both tallies together (failures joined)."""
        failures = "\n\n".join(f for f in (self.failure, other.failure) if f)
        return Tally(self.steps + other.steps, self.requests + other.requests,
                     self.conflicted + other.conflicted, self.stemmed + other.stemmed,
                     self.restarts + other.restarts, failures or None)


class Env:
    """What the machines of one process share: the settings, the current app, and tallies."""

    def __init__(self, settings_: dict[str, str]) -> None:
        self.settings = settings_
        self.app = create_app(settings_)
        self.tally = Tally()

    def restart(self) -> None:
        self.tally.restarts += 1
        self.app.store.close()
        self.app = create_app(self.settings)


hex_ids = st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}")
doc_ids = st.sampled_from(IDS)
values = st.fixed_dictionaries({"v": st.integers(-5, 5)},
                               optional={"tag": st.sampled_from(["x", "\u00e9", ""])})
BULK_ENTRY = st.tuples(doc_ids, st.integers(0, 7), hex_ids, values, st.booleans())


class HttpModel(RuleBasedStateMachine):
    """Drives one fresh database through the API and the model side by side."""

    env: Env

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.db = ""
        self.touched: set[str] = set()

    @property
    def app(self) -> Any:
        return self.env.app

    def request(self, method: str, path: str, body: Any = None) -> reliability.Answer:
        self.env.tally.requests += 1
        data = None if body is None else orjson.dumps(body)
        return call(self.app, method, f"/{self.db}{path}", data,
                    {"Accept": "application/json"})

    @initialize()
    def new_database(self) -> None:
        self.db = "model_" + uuid.uuid4().hex[:10]
        assert call(self.app, "PUT", f"/{self.db}").status == 201

    # -- a rev to name: a leaf, an older rev, a made-up one, or none -------------------------------

    def pick_rev(self, doc_id: str, choice: int, made_up: str) -> str | None:
        doc = self.model.docs.get(doc_id)
        known = sorted(doc.tree) if doc else []
        leaves = doc.leaves() if doc and doc.tree else []
        if choice == 0 or not known:
            return None if choice in (0, 1) else f"{choice}-{made_up}"
        if choice <= 3 and leaves:
            return leaves[choice % len(leaves)]
        if choice <= 5:
            return known[choice % len(known)]
        return f"{choice - 4}-{made_up}"

    # -- rules ---------------------------------------------------------------------------------

    @rule(doc_id=doc_ids, choice=st.integers(0, 7), made_up=hex_ids, body=values)
    def put(self, doc_id: str, choice: int, made_up: str, body: dict[str, Any]) -> None:
        self.touched.add(doc_id)
        rev = self.pick_rev(doc_id, choice, made_up)
        sent = dict(body, **({"_rev": rev} if rev else {}))
        answer = self.request("PUT", path_of(doc_id), sent)
        parent = self.model.interactive(doc_id, rev, False)
        if parent is None:
            assert answer.status == 409, (answer.status, answer.body)
            return
        assert answer.status == 201, (answer.status, answer.body)
        self.model.add(doc_id, parent, answer.json()["rev"], False, body)
        self.model.seq += 1

    @rule(doc_id=doc_ids, choice=st.integers(0, 7), made_up=hex_ids)
    def delete(self, doc_id: str, choice: int, made_up: str) -> None:
        self.touched.add(doc_id)
        rev = self.pick_rev(doc_id, choice, made_up)
        answer = self.request("DELETE", path_of(doc_id) + (f"?rev={rev}" if rev else ""))
        doc = self.model.docs.get(doc_id)
        if doc is None or not doc.tree or doc.deleted():
            assert answer.status == 404, (answer.status, answer.body)
            assert answer.json()["reason"] == ("deleted" if doc and doc.tree else "missing")
            return
        parent = self.model.interactive(doc_id, rev, True)
        if parent is None:
            assert answer.status == 409, (answer.status, answer.body)
            return
        assert answer.status == 200, (answer.status, answer.body)
        self.model.add(doc_id, parent, answer.json()["rev"], True, {})
        self.model.seq += 1

    @rule(entries=st.one_of(
        st.lists(BULK_ENTRY, min_size=1, max_size=4),
        st.lists(BULK_ENTRY, min_size=PREPARE_MIN_EDITS, max_size=PREPARE_MIN_EDITS + 4)))
    def bulk_interactive(self, entries: list[tuple[str, int, str, dict[str, Any], bool]]
                         ) -> None:
        docs = []
        self.touched.update(entry[0] for entry in entries)
        for doc_id, choice, made_up, body, deleted in entries:
            rev = self.pick_rev(doc_id, choice, made_up)
            docs.append({"_id": doc_id, **body, **({"_rev": rev} if rev else {}),
                         **({"_deleted": True} if deleted else {})})
        answer = self.request("POST", "/_bulk_docs", {"docs": docs})
        assert answer.status == 201, answer.body
        rows = answer.json()
        assert [row["id"] for row in rows] == [d["_id"] for d in docs]
        changed = set()
        for sent, row in zip(docs, rows):
            deleted = bool(sent.get("_deleted"))
            parent = self.model.interactive(sent["_id"], sent.get("_rev"), deleted)
            if parent is None:
                assert row == {"id": sent["_id"], "error": "conflict",
                               "reason": "Document update conflict."}, row
                continue
            assert row.get("ok") is True, row
            body = {k: v for k, v in sent.items() if not k.startswith("_")}
            self.model.add(sent["_id"], parent, row["rev"], deleted, body)  # tombstones keep it
            changed.add(sent["_id"])
        self.model.seq += len(changed)

    @rule(doc_id=doc_ids, data=st.data(), body=values, deleted=st.booleans())
    def bulk_replicated(self, doc_id: str, data: st.DataObject, body: dict[str, Any],
                        deleted: bool) -> None:
        self.replicate(doc_id, data, body, deleted)

    def replicate(self, doc_id: str, data: st.DataObject, body: dict[str, Any],
                  deleted: bool) -> None:
        """A `new_edits=false` write of a random path: extending, forking, replaying or new."""
        self.touched.add(doc_id)
        doc = self.model.docs.get(doc_id)
        known = sorted(doc.tree) if doc else []
        how = data.draw(st.sampled_from(["extend", "fork", "replay", "fresh"]))
        if how in ("extend", "fork", "replay") and known:
            base = data.draw(st.sampled_from(known))
            ancestry = doc.ancestry(base)  # type: ignore[union-attr]
            if how == "replay":
                path = ancestry
            else:
                if how == "fork" and len(ancestry) > 1:
                    ancestry = ancestry[1:]
                new = data.draw(st.lists(hex_ids, min_size=1, max_size=3, unique=True))
                top = pos(ancestry[0]) + len(new)
                path = [f"{top - i}-{h}" for i, h in enumerate(new)] + ancestry
            path = path[:data.draw(st.integers(1, len(path)))]
        else:
            start = data.draw(st.integers(1, 4))
            new = data.draw(st.lists(hex_ids, min_size=1, max_size=start, unique=True))
            path = [f"{start - i}-{h}" for i, h in enumerate(new)]
        leaf = path[0]
        sent = {"_id": doc_id, "_rev": leaf, **body,
                "_revisions": {"start": pos(leaf), "ids": [r.split("-", 1)[1] for r in path]}}
        if deleted:
            sent["_deleted"] = True
        answer = self.request("POST", "/_bulk_docs", {"docs": [sent], "new_edits": False})
        assert (answer.status, answer.json()) == (201, []), answer.body
        if self.model.replicate(doc_id, path, deleted, body):
            self.model.seq += 1

    @rule(doc_id=doc_ids, data=st.data(), made_up=hex_ids)
    def revs_diff(self, doc_id: str, data: st.DataObject, made_up: str) -> None:
        doc = self.model.docs.get(doc_id)
        known = sorted(doc.tree) if doc else []
        asked = data.draw(st.lists(st.sampled_from(known), max_size=3)) if known else []
        asked += [f"{data.draw(st.integers(1, 9))}-{made_up}"]
        answer = self.request("POST", "/_revs_diff", {doc_id: asked})
        assert answer.status == 200, answer.body
        missing = [r for r in dict.fromkeys(asked) if r not in (doc.tree if doc else {})]
        expected: dict[str, Any] = {}
        if missing:
            entry: dict[str, Any] = {"missing": missing}
            if doc and doc.tree:
                top = max(pos(r) for r in missing)
                ancestors = sorted(leaf for leaf in doc.leaves() if pos(leaf) < top)
                if ancestors:
                    entry["possible_ancestors"] = ancestors
            expected[doc_id] = entry
        assert answer.json() == expected

    @rule(doc_id=doc_ids, data=st.data(), body=values, deleted=st.booleans())
    def bulk_replicated_again(self, doc_id: str, data: st.DataObject, body: dict[str, Any],
                              deleted: bool) -> None:
        """The same rule twice: rules are picked evenly, and replication makes the conflicts."""
        self.replicate(doc_id, data, body, deleted)

    @rule(action=st.sampled_from(["compact", "revs_limit", "restart"]),
          limit=st.sampled_from(LIMITS))
    def maintenance(self, action: str, limit: int) -> None:
        """Compaction, a `_revs_limit` change or a restart (one rule: rarer than a write)."""
        self.touched.update(IDS)
        if action == "compact":
            answer = call(self.app, "POST", f"/{self.db}/_compact", b"{}")
            assert answer.status == 202, answer.body
            self.model.compact()
        elif action == "revs_limit":
            answer = self.request("PUT", "/_revs_limit", limit)
            assert answer.status == 200, answer.body
            self.model.limit = limit
        else:
            self.env.restart()

    def teardown(self) -> None:
        self.env.tally.stemmed += self.model.stemmed

    # -- the comparison after every step --------------------------------------------------------

    @invariant()
    def agrees(self) -> None:
        """Every document's leaves (one `_bulk_get`), `_all_docs` and the counters after every
        step; the winner, `open_revs=all` and `GET ?rev=` of every rev of the documents the step
        touched (all of them after a compaction, a `_revs_limit` change or a restart)."""
        if not self.db:
            return
        self.env.tally.steps += 1
        got = self.request("POST", "/_bulk_get?revs=true", {"docs": [{"id": i} for i in IDS]})
        assert got.status == 200, got.body
        for result in got.json()["results"]:
            self.check_leaves(result["id"], result["docs"])
        live = []
        for doc_id in IDS:
            doc = self.model.docs.get(doc_id)
            if doc and doc.tree and not doc.deleted():
                live.append((doc_id, doc.leaves()[0]))
        listing = self.request("GET", "/_all_docs").json()
        assert listing["total_rows"] == len(live)
        assert [(r["id"], r["value"]["rev"]) for r in listing["rows"]] == sorted(
            live, key=lambda pair: pair[0].encode())
        info = self.request("GET", "").json()
        dead = sum(1 for d in self.model.docs.values() if d.tree and d.deleted())
        assert (info["doc_count"], info["doc_del_count"]) == (len(live), dead)
        assert info["update_seq"] == self.model.seq
        for doc_id in sorted(self.touched):
            self.check_doc(doc_id)
        self.touched.clear()
        if any(len(d.leaves()) > 1 for d in self.model.docs.values() if d.tree):
            self.env.tally.conflicted += 1

    def check_leaves(self, doc_id: str, found: list[dict[str, Any]]) -> None:
        doc = self.model.docs.get(doc_id)
        if doc is None or not doc.tree:
            assert [entry["error"]["error"] for entry in found] == ["not_found"], found
            return
        leaves = doc.leaves()
        shown = [entry["ok"] for entry in found]
        assert [(d["_rev"], bool(d.get("_deleted"))) for d in shown] == \
            [(leaf, doc.tree[leaf][1]) for leaf in leaves], doc_id
        for d in shown:
            rev = d["_rev"]
            assert {k: v for k, v in d.items() if not k.startswith("_")} == doc.bodies[rev], rev
            ids = [r.split("-", 1)[1] for r in doc.ancestry(rev)]
            assert d["_revisions"] == {"start": pos(rev), "ids": ids}, rev

    def check_doc(self, doc_id: str) -> None:
        doc = self.model.docs.get(doc_id)
        path = path_of(doc_id)
        got = self.request("GET", path + "?revs=true&conflicts=true&deleted_conflicts=true")
        if doc is None or not doc.tree:
            assert (got.status, got.json()["reason"]) == (404, "missing"), got.body
            assert self.request("GET", path + "?open_revs=all").status == 404
            return
        leaves = doc.leaves()
        winner = leaves[0]
        if doc.deleted():
            assert (got.status, got.json()["reason"]) == (404, "deleted"), got.body
        else:
            assert got.status == 200, got.body
            shown = got.json()
            assert shown["_rev"] == winner
            assert {k: v for k, v in shown.items() if not k.startswith("_")} == doc.bodies[winner]
            ids = [r.split("-", 1)[1] for r in doc.ancestry(winner)]
            assert shown["_revisions"] == {"start": pos(winner), "ids": ids}
            conflicts = [r for r in leaves[1:] if not doc.tree[r][1]]
            deleted = [r for r in leaves[1:] if doc.tree[r][1]]
            assert shown.get("_conflicts", []) == conflicts
            assert shown.get("_deleted_conflicts", []) == deleted
        opened = self.request("GET", path + "?open_revs=all")
        assert opened.status == 200, opened.body
        assert [(o["ok"]["_rev"], bool(o["ok"].get("_deleted"))) for o in opened.json()] == \
            [(leaf, doc.tree[leaf][1]) for leaf in leaves]
        for entry in opened.json():
            rev = entry["ok"]["_rev"]
            assert {k: v for k, v in entry["ok"].items() if not k.startswith("_")} == \
                doc.bodies[rev], rev
        for rev in sorted(doc.tree):  # every rev still known: its body, or 404 once dropped
            one = self.request("GET", f"{path}?rev={rev}")
            if rev not in doc.bodies:
                assert (one.status, one.json()["reason"]) == (404, "missing"), (rev, one.body)
                continue
            assert one.status == 200, (rev, one.body)
            assert bool(one.json().get("_deleted")) == doc.tree[rev][1], rev
            assert {k: v for k, v in one.json().items() if not k.startswith("_")} == \
                doc.bodies[rev], rev


def run_machines(settings_: dict[str, str], goal: int) -> Tally:
    """Run rounds of the state machine in this process (a spawned child) on the shared store
    until `goal` steps ran, a round failed, or MAX_ROUNDS; the tally, with the failure's
    traceback (hypothesis's failing steps are in its notes)."""
    env = Env(settings_)

    class Machine(HttpModel):
        pass

    Machine.env = env
    try:
        for _ in range(MAX_ROUNDS):
            if env.tally.steps >= goal:
                break
            examples = math.ceil((goal - env.tally.steps) / (EXAMPLE_STEPS * RAN)) + 1
            # Not derandomized, even under CI (hypothesis's CI profile would be): a fixed seed
            # would replay the same examples in both processes and in every round, so most of
            # the steps would be repeats. A failure prints its `reproduce_failure` blob.
            run_state_machine_as_test(Machine, settings=settings(
                max_examples=examples, stateful_step_count=EXAMPLE_STEPS, deadline=None,
                suppress_health_check=list(HealthCheck), print_blob=True, derandomize=False,
                database=None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        env.tally.failure = "".join(traceback.format_exception(exc))
    finally:
        env.app.store.close()
    return env.tally


@pytest.fixture(params=BACKENDS)
def model_store(request: pytest.FixtureRequest, tmp_path: Path
                ) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh store with its schema, and the settings of an app on it."""
    with reliability.store_url_for(request.param, request, tmp_path) as url:
        reliability.create_schema_first(url)
        # Commits are acknowledged before they reach the disk. Sound here only: this test checks
        # the logic of rev trees, and neither PostgreSQL nor the machine is ever killed (a
        # "restart" step restarts the app, and a committed transaction survives that in either
        # mode). Durability is the kill -9 tests' job; they run with the durable defaults.
        if request.param == "postgres":
            name = sa.engine.make_url(url).database
            with request.getfixturevalue("pg_admin").connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        yield request.param, {"database_url": url, "data_dir": str(tmp_path / "data"),
                              "sqlite_synchronous": "NORMAL"}


def test_model_stateful_http(model_store: tuple[str, dict[str, str]]) -> None:
    backend, settings_ = model_store
    goal = math.ceil(STEPS / PROCESSES)
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        shares = pool.starmap_async(run_machines, [(settings_, goal)] * PROCESSES
                                    ).get(PROCESS_TIMEOUT)
    total = sum(shares, Tally())
    figure(backend, "model steps", total.steps)
    figure(backend, "model requests", total.requests)
    figure(backend, "divergences", sum(1 for share in shares if share.failure))
    print(f"\n{backend}: {total.steps} steps in {PROCESSES} processes, {total.requests} requests, "
          f"{total.conflicted} steps with a conflicted doc, {total.stemmed} revs stemmed, "
          f"{total.restarts} restarts")
    assert total.failure is None, total.failure
