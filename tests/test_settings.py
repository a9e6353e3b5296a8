"""Settings as data: parsers and their errors, the config file, precedence, the README's table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from settee.server import cli
from settee.server.settings import (
    BY_NAME,
    SETTINGS,
    SettingError,
    markdown_table,
    read_config_file,
    resolve,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_names_environment_variables_and_flags_are_unique() -> None:
    for attribute in ("name", "env", "flag"):
        values = [getattr(s, attribute) for s in SETTINGS]
        assert len(values) == len(set(values)), attribute
    for setting in SETTINGS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", setting.name)
        assert setting.help.endswith("."), setting.name


def test_defaults_are_what_their_parsers_would_give() -> None:
    settings = resolve({}, {})
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        assert value == setting.default
        if value is not None:
            assert setting.parse(value) == value, setting.name  # native values parse as such
        assert settings.source(setting.name) == "default"


def test_the_issue_settings_are_declared_with_their_defaults() -> None:
    settings = resolve({}, {})
    assert settings.max_attachment_size == 1024**3
    assert (settings.js_pool_size, settings.js_time_limit, settings.js_memory_limit) == \
        (2, 5.0, 64 * 1024**2)
    assert (settings.python_views, settings.background_indexing) == ((), False)
    assert (settings.log_format, settings.cors_origins, settings.cors_credentials) == \
        ("text", (), False)
    assert BY_NAME["admin_password"].secret and not BY_NAME["admin_user"].secret


@pytest.mark.parametrize("name,raw,value", [
    ("max_document_size", "64MiB", 64 * 1024**2),
    ("max_attachment_size", "2G", 2 * 1024**3),
    ("max_http_request_size", "1_000", 1000),
    ("js_time_limit", "0.25", 0.25),
    ("background_indexing", "yes", True),
    ("sqlite_synchronous", "normal", "NORMAL"),
    ("log_level", "WARNING", "warning"),
    ("python_views", "app.views.by_date, app.views.by_tag", ("app.views.by_date",
                                                           "app.views.by_tag")),
    ("cors_origins", "https://a.example, http://localhost:8080",
     ("https://a.example", "http://localhost:8080")),
    ("cors_headers", "X-Request-Id", ("X-Request-Id",)),
    ("bind", " [::1]:6000 ", "[::1]:6000"),
])
def test_environment_values_are_parsed(name: str, raw: str, value: Any) -> None:
    settings = resolve({}, {BY_NAME[name].env: raw})
    assert getattr(settings, name) == value
    assert settings.source(name) == f"env {BY_NAME[name].env}"


@pytest.mark.parametrize("name,raw,message", [
    ("threads", "0", "threads (SETTEE_THREADS): must be at least 1"),
    ("workers", "many", "workers (SETTEE_WORKERS): expected a whole number, got 'many'"),
    ("max_document_size", "10 parsecs", "expected a number of bytes such as 1048576 or 64MiB"),
    ("max_attachment_size", "0", "must be a positive number of bytes"),
    ("js_time_limit", "-1", "js_time_limit (SETTEE_JS_TIME_LIMIT): must be a positive number"),
    ("background_indexing", "maybe", "expected true or false, got 'maybe'"),
    ("log_format", "xml", "log_format (SETTEE_LOG_FORMAT): must be one of text, json"),
    ("log_level", "loud", "must be one of debug, info, warning, error, critical"),
    ("sqlite_synchronous", "sometimes", "must be one of OFF, NORMAL, FULL, EXTRA"),
    ("python_views", "os.system,not a path", "'not a path' is not a path such as"),
    ("python_views", "by_date", "'by_date' is not a path such as"),
    ("cors_origins", "example.com", "'example.com' is not an origin"),
    ("cors_origins", "*,https://a.example", "`*` cannot be combined with other origins"),
    ("cors_headers", "X Bad", "'X Bad' is not an HTTP header name"),
    ("bind", "127.0.0.1:http", "bind (SETTEE_BIND): port must be a number"),
    ("bind", "::1:5984", "put an IPv6 address in brackets"),
    ("bind", ":5984", "missing host"),
])
def test_a_bad_value_names_the_setting_and_its_source(name: str, raw: str,
                                                      message: str) -> None:
    with pytest.raises(SettingError) as refused:
        resolve({}, {BY_NAME[name].env: raw})
    assert message in str(refused.value)


def test_credentials_with_any_origin_are_refused() -> None:
    with pytest.raises(SettingError, match="cors_credentials cannot be true"):
        resolve({}, {"SETTEE_CORS_ORIGINS": "*", "SETTEE_CORS_CREDENTIALS": "true"})


def test_precedence_is_default_file_environment_flag(tmp_path: Path) -> None:
    config = write(tmp_path / "settee.toml",
                   'threads = 3\nworkers = 5\nlog_format = "json"\ndata_dir = "/srv/a"\n')
    settings = resolve({"workers": "2"}, {"SETTEE_THREADS": "7", "SETTEE_WORKERS": "4",
                                          "SETTEE_CONFIG": config})
    assert (settings.workers, settings.threads, settings.log_format, settings.data_dir,
            settings.bind) == (2, 7, "json", "/srv/a", "127.0.0.1:5984")
    assert settings.source("workers") == "flag --workers"
    assert settings.source("threads") == "env SETTEE_THREADS"
    assert settings.source("log_format") == f"file {config}"
    assert settings.source("bind") == "default"
    assert settings.config_file == config


def test_the_config_file_takes_native_toml_values(tmp_path: Path) -> None:
    config = write(tmp_path / "s.toml", 'background_indexing = true\nthreads = 8\n'
                   'js_time_limit = 2\nmax_document_size = "4MiB"\n'
                   'python_views = ["app.views.one", "app.views.two"]\n')
    settings = resolve({}, {}, config)
    assert (settings.background_indexing, settings.threads, settings.js_time_limit,
            settings.max_document_size, settings.python_views) == \
        (True, 8, 2.0, 4 * 1024**2, ("app.views.one", "app.views.two"))


@pytest.mark.parametrize("text,message", [
    ("threads = true\n", "threads (in {path}): expected a whole number, got True"),
    ('bind = 5984\n', "bind (in {path}): expected a string, got 5984"),
    ("threds = 3\n", "config file {path}: unknown setting(s): threds"),
    ("threads = \n", "config file {path}: not valid TOML"),
    ('[server]\nthreads = 3\n', "config file {path}: unknown setting(s): server"),
])
def test_config_file_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(SettingError) as refused:
        resolve({}, {}, config)
    assert message.format(path=config) in str(refused.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(SettingError, match="no such file"):
        resolve({}, {"SETTEE_CONFIG": missing})
    with pytest.raises(SettingError, match="no such file"):
        read_config_file(missing)


def test_unknown_overrides_are_refused() -> None:
    with pytest.raises(SettingError, match="unknown setting"):
        resolve({"thread": 3}, {})


# -- the README's table ------------------------------------------------------------------------

def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(cli.TABLE_START), text.index(cli.TABLE_END)
    return text[start + len(cli.TABLE_START):end].strip() + "\n"


def test_the_readme_table_is_generated_from_settings() -> None:
    assert readme_table() == markdown_table(), \
        "README settings table is stale: run `settee settings-table --update README.md`"


def test_every_setting_is_a_row_of_the_table() -> None:
    rows = [line for line in markdown_table().splitlines()[2:]]
    assert [row.split("|")[1].strip().strip("`") for row in rows] == [s.name for s in SETTINGS]


def test_settings_table_command_prints_and_updates(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["settings-table"]) == 0
    assert capsys.readouterr().out == markdown_table()
    doc = tmp_path / "README.md"
    doc.write_text(f"# x\n\n{cli.TABLE_START}\n| old |\n{cli.TABLE_END}\n\nafter\n")
    assert cli.main(["settings-table", "--update", str(doc)]) == 0
    assert doc.read_text() == f"# x\n\n{cli.TABLE_START}\n\n{markdown_table()}\n" \
                              f"{cli.TABLE_END}\n\nafter\n"
    doc.write_text("no markers")
    assert cli.main(["settings-table", "--update", str(doc)]) == 2
    assert "no settings-table markers" in capsys.readouterr().err
