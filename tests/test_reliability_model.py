"""The HTTP API against a naive model of revision trees (reliability.md section 4, test 44)."""

# A hypothesis state machine drives the API in-process: creates, updates with the current, a stale
# or a made-up rev, deletes, mixed `_bulk_docs` (interactive, and `new_edits=false` with random
# rev paths that fork, extend, replay and re-root the trees), `_revs_diff`, compaction,
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

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import reliability
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

pytest_plugins = ["reliability_report"]

IDS = ["_design/d", "alpha", "beta", "gamma"]
# (examples, steps per example) per backend. SQLite reaches the 25,000 steps in CI (~90 s);
# PostgreSQL round trips cost ~2 ms a request here, so it runs ~1,000 steps in CI and 30,000 in soak.
SIZES = {"sqlite": (sized(600, 6000), sized(50, 60)), "postgres": (sized(30, 500), sized(40, 60))}
LIMITS = [1, 2, 3, 5, 1000]


def path_of(doc_id: str) -> str:
    return "/_design/" + doc_id[len("_design/"):] if doc_id.startswith("_design/") else \
        "/" + doc_id


class Env:
    """What the machines of one test share: the settings, the current app, and tallies."""

    def __init__(self, settings_: dict[str, str]) -> None:
        self.settings = settings_
        self.app = create_app(settings_)
        self.steps = 0
        self.requests = 0
        self.conflicted = 0  # steps that ended with a document holding more than one leaf
        self.stemmed = 0  # revs the model stemmed away
        self.restarts = 0

    def restart(self) -> None:
        self.restarts += 1
        self.app.store.close()
        self.app = create_app(self.settings)


hex_ids = st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}")
doc_ids = st.sampled_from(IDS)
values = st.fixed_dictionaries({"v": st.integers(-5, 5)},
                               optional={"tag": st.sampled_from(["x", "\u00e9", ""])})


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
        self.env.requests += 1
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

    @rule(entries=st.lists(st.tuples(doc_ids, st.integers(0, 7), hex_ids, values, st.booleans()),
                           min_size=1, max_size=4))
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
        self.env.stemmed += self.model.stemmed

    # -- the comparison after every step --------------------------------------------------------

    @invariant()
    def agrees(self) -> None:
        """Every document's leaves (one `_bulk_get`), `_all_docs` and the counters after every
        step; the winner, `open_revs=all` and `GET ?rev=` of every rev of the documents the step
        touched (all of them after a compaction, a `_revs_limit` change or a restart)."""
        if not self.db:
            return
        self.env.steps += 1
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
            self.env.conflicted += 1

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


@pytest.fixture(params=BACKENDS)
def model_env(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with reliability.store_url_for(request.param, request, tmp_path) as url:
        env = Env({"database_url": url, "data_dir": str(tmp_path / "data")})
        try:
            yield request.param, env
        finally:
            env.app.store.close()


def test_model_stateful_http(model_env: tuple[str, Env]) -> None:
    backend, env = model_env

    class Machine(HttpModel):
        pass

    Machine.env = env
    try:
        run_state_machine_as_test(Machine, settings=settings(
            max_examples=SIZES[backend][0], stateful_step_count=SIZES[backend][1], deadline=None,
            suppress_health_check=list(HealthCheck), print_blob=True))
    except BaseException:
        figure(backend, "divergences", 1)
        raise
    finally:
        figure(backend, "model steps", env.steps)
        figure(backend, "model requests", env.requests)
        print(f"\n{backend}: {env.steps} steps, {env.requests} requests, {env.conflicted} steps "
              f"with a conflicted doc, {env.stemmed} revs stemmed, {env.restarts} restarts")
    figure(backend, "divergences", 0)
