"""The `settee` command in-process: settings and binds, check-config, help, dump, load, compact.

`serve` is replaced by a recorder (no server starts); the data commands run on the library API
against a fresh store on each backend.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from settee.server import cli, serve
from settee.server.settings import SETTINGS, Settings
from settee.store import Store, StoreConfig, make_edit

README = Path(__file__).resolve().parent.parent / "README.md"
REFUSAL = "refusing to bind {host} without an admin password (SETTEE_ADMIN_PASSWORD)"


class Served(list[Settings]):
    """The settings `serve.run` was called with, and the reload function it got."""

    reresolve: Callable[[], Settings] | None = None


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """Replace gunicorn, and clear every `SETTEE_*` variable of the calling environment."""
    calls = Served()

    def run(settings: Settings, reresolve: Callable[[], Settings] | None = None) -> None:
        calls.append(settings)
        calls.reresolve = reresolve
    monkeypatch.setattr(serve, "run", run)
    for name in list(os.environ):
        if name.startswith("SETTEE_"):
            monkeypatch.delenv(name)
    return calls


@pytest.mark.parametrize("bind", ["127.0.0.1:5984", "127.0.0.2:1", "[::1]:5984",
                                  "localhost:5984", "LOCALHOST"])
def test_loopback_binds_need_no_password(served: Served, bind: str) -> None:
    assert cli.main(["serve", "--bind", bind]) == 0
    assert served[0].bind == bind


@pytest.mark.parametrize("bind,host", [("0.0.0.0:5984", "0.0.0.0"), ("[::]:5984", "::"),
                                       ("192.0.2.7:80", "192.0.2.7"),
                                       ("example.com:5984", "example.com")])
def test_public_binds_need_an_admin_password(served: Served, bind: str, host: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--bind", bind]) == 2
    assert REFUSAL.format(host=host) in capsys.readouterr().err
    assert served == []
    monkeypatch.setenv("SETTEE_BIND", bind)
    monkeypatch.setenv("SETTEE_ADMIN_PASSWORD", "s3cret")
    assert cli.main(["serve"]) == 0
    assert served[0].bind == bind
    assert served[0].admin_password == "s3cret"


def test_the_admin_password_may_come_from_the_config_file(served: Served,
                                                          tmp_path: Path) -> None:
    config = tmp_path / "settee.toml"
    config.write_text('bind = "0.0.0.0:5984"\nadmin_password = "from-file"\n')
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert served[0].admin_password == "from-file"


@pytest.mark.parametrize("args,message", [
    (["--threads", "0"], "threads (--threads): must be at least 1"),
    (["--workers", "many"], "workers (--workers): expected a whole number"),
    (["--sqlite-synchronous", "sometimes"], "must be one of OFF, NORMAL, FULL, EXTRA"),
    (["--bind", "127.0.0.1:http"], "bind (--bind): port must be a number"),
    (["--bind", "::1:5984"], "put an IPv6 address in brackets"),
    (["--config", "/nonexistent/settee.toml"], "config file /nonexistent/settee.toml"),
])
def test_bad_values_exit_2_with_a_message(served: Served, args: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", *args]) == 2
    assert message in capsys.readouterr().err
    assert served == []


def test_flags_beat_environment_beat_file_beat_defaults(served: Served, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "settee.toml"
    config.write_text("threads = 9\nworkers = 9\nbusy_timeout_ms = 1234\n")
    monkeypatch.setenv("SETTEE_CONFIG", str(config))
    monkeypatch.setenv("SETTEE_THREADS", "3")
    monkeypatch.setenv("SETTEE_WORKERS", "5")
    assert cli.main(["serve", "--workers", "2"]) == 0
    settings = served[0]
    assert (settings.workers, settings.threads, settings.busy_timeout_ms, settings.data_dir) == \
        (2, 3, 1234, "./data")
    options = serve.gunicorn_options(settings)
    assert options["workers"] == 2 and options["threads"] == 3
    assert (options["worker_class"] == "settee.server.worker.SetteeWorker"
            and options["limit_request_line"] == 8190)
    assert options["accesslog"] is None  # settee writes its own access log


def test_sighup_reresolves_the_config_file(served: Served, tmp_path: Path) -> None:
    config = tmp_path / "settee.toml"
    config.write_text("threads = 4\n")
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert served[0].threads == 4 and served.reresolve is not None
    config.write_text("threads = 6\n")
    assert served.reresolve().threads == 6
    config.write_text('bind = "0.0.0.0:1"\n')  # a reload keeps the bind rule
    with pytest.raises(ValueError, match="refusing to bind"):
        served.reresolve()


def check_config_lines(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}


def test_check_config_prints_every_setting_and_its_source(
        served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "settee.toml"
    config.write_text('log_format = "json"\n')
    monkeypatch.setenv("SETTEE_THREADS", "3")
    monkeypatch.setenv("SETTEE_ADMIN_PASSWORD", "hunter2")
    assert cli.main(["check-config", "--database-url", "postgresql://u:pw@h/db",
                     "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == {s.name for s in SETTINGS} | {"store", "config"}
    assert lines["threads"].split()[1:] == ["3", "env", "SETTEE_THREADS"]
    assert lines["log_format"].split()[1:] == ["json", "file", str(config)]
    assert lines["config"].split()[1:] == [str(config), "flag", "--config"]
    assert lines["database_url"].endswith("flag --database-url")
    assert "pw" not in lines["database_url"] and "pw" not in lines["store"]
    assert "hunter2" not in out and lines["admin_password"].split()[1] == "********"
    assert lines["bind"].split()[1:] == ["127.0.0.1:5984", "default"]
    assert served == []


def test_check_config_refuses_a_public_bind_without_password(
        served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "--bind", "0.0.0.0:5984"]) == 2
    captured = capsys.readouterr()
    assert "bind" in captured.out and REFUSAL.format(host="0.0.0.0") in captured.err


@pytest.mark.parametrize("command", ["serve", "check-config", "dump", "load", "compact"])
def test_every_setting_has_a_flag_with_its_help(command: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even at "-"
    for setting in SETTINGS:
        assert setting.flag in help_text
        assert "".join(setting.help.split()) in help_text
    assert "--config" in help_text


def test_settee_help_lists_every_setting_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for setting in SETTINGS:
        assert f"{setting.flag} / {setting.env}" in out
    for command in cli.COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_help_ends_with_an_example(command: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert re.search(rf"example:\n  settee {command}\b|example:\n  \S+=\S+ settee {command}\b",
                     out), out


def test_every_command_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `settee ([a-z-]+)", section, re.MULTILINE))
    assert documented == set(cli.COMMANDS)


# -- dump, load and compact ----------------------------------------------------------------------

@pytest.fixture
def filled(store_url: str) -> Iterator[Store]:
    """A store with db `src`: three docs, one edited twice, one with a replicated conflict."""
    store = Store(StoreConfig(url=store_url))
    store.setup()
    store.create_db("src")
    db = store.db("src")
    rev = db.save("a", {"n": 1})
    rev = db.save("a", {"_rev": rev, "n": 2})
    db.save("a", {"_rev": rev, "n": 3})
    db.save("b", {"text": "caf\u00e9", "big": 12345678901234567890})
    db.save("c", {"n": 0})
    db.delete("c", db["c"]["_rev"])
    db.write([make_edit("b", {"_id": "b", "_rev": "1-ffff", "side": True}, new_edits=False)],
             new_edits=False)
    yield store
    store.close()


def run(args: list[str], store_url: str) -> int:
    return cli.main([*args, "--database-url", store_url])


def test_dump_writes_every_live_leaf_with_its_history(
        filled: Store, store_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "src.jsonl"
    assert run(["dump", "src", "--output", str(out)], store_url) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(d["_id"], d["_rev"].split("-")[0]) for d in lines] == \
        [("a", "3"), ("b", "1"), ("b", "1")]
    assert lines[0]["n"] == 3 and lines[0]["_revisions"]["start"] == 3
    assert len(lines[0]["_revisions"]["ids"]) == 3
    assert {d.get("side", False) for d in lines[1:]} == {True, False}
    assert lines[1]["big"] == 12345678901234567890 or lines[2]["big"] == 12345678901234567890
    assert "dump src: 3 revisions of 2 documents" in capsys.readouterr().err


def test_dump_to_stdout(filled: Store, store_url: str,
                        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert run(["dump", "src", "--quiet"], store_url) == 0
    captured = capsysbinary.readouterr()
    assert len(captured.out.splitlines()) == 3 and captured.err == b""


def test_load_restores_the_same_revs_and_resumes(filled: Store, store_url: str,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "src.jsonl"
    assert run(["dump", "src", "-o", str(out), "-q"], store_url) == 0
    assert run(["load", "copy", str(out), "--batch-size", "2"], store_url) == 0
    err = capsys.readouterr().err
    assert "created the database" in err and "3 written, 0 already there" in err
    assert "1 documents now hold conflicting revisions" in err
    src, copy = filled.db("src"), filled.db("copy")
    for doc_id in ("a", "b"):
        assert copy[doc_id] == src[doc_id]
        copied, original = copy.revisions(doc_id)[0], src.revisions(doc_id)[0]
        assert copied is not None and original is not None
        assert copied.tree.keys() <= original.tree.keys()
    assert "c" not in copy
    assert run(["load", "copy", str(out)], store_url) == 0  # resumed: nothing left to do
    assert "0 written, 3 already there, 0 conflicts" in capsys.readouterr().err


def test_load_of_plain_documents_reports_conflicts_and_bad_lines(
        filled: Store, store_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"_id": "x", "v": 1}\n\n{"_id": "y", "v": 2}\nnot json\n[1]\n'
                     '{"_id": "a", "v": 3}\n{"_id": "z", "_bad": 1}\n')
    assert run(["load", "src", str(plain)], store_url) == 1
    err = capsys.readouterr().err
    assert "2 written, 0 already there, 1 conflicts, 3 invalid lines" in err
    assert "conflict: a exists with another revision" in err
    assert "line 4: not JSON" in err and "line 5: not a JSON object" in err
    assert "line 7: z: Bad special document member: _bad" in err
    assert filled.db("src")["x"]["v"] == 1
    plain.write_text('{"_id": "x", "v": 1}\n{"_id": "y", "v": 2}\n')
    assert run(["load", "src", str(plain)], store_url) == 0  # the same bodies: already there
    assert "0 written, 2 already there" in capsys.readouterr().err


def test_compact_drops_old_bodies(filled: Store, store_url: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = filled.db_info("src").body_bytes
    assert run(["compact", "src"], store_url) == 0
    after = filled.db_info("src").body_bytes
    assert after <= before
    assert f"compact src: {before} -> {after} bytes" in capsys.readouterr().err
    assert filled.db("src")["a"]["n"] == 3


@pytest.mark.parametrize("command", [["dump", "nope"], ["compact", "nope"]])
def test_a_missing_database_is_an_error_not_a_traceback(
        store_url: str, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(command, store_url) == 1
    assert capsys.readouterr().err.strip() == \
        f"settee {command[0]}: error: Database does not exist."


def test_load_refuses_an_illegal_database_name(store_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "x.jsonl"
    source.write_text("")
    assert run(["load", "Bad!Name", str(source)], store_url) == 1
    assert "settee load: error:" in capsys.readouterr().err
