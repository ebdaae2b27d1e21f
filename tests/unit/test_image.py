"""The container image, checked from its Dockerfile (no container engine runs where the tests
run): multi-stage, non-root, installed from the hashed lock file, without tests or benchmarks,
a HEALTHCHECK on /api/health, and the in-container paths that notifierd and notifierctl agree on.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from notifierd.paths import SYSTEM_CONFIG, SYSTEM_SOCKET, SYSTEM_STATE_DIR
from notifierd.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
LOCK = "requirements.lock"
# The paths of a daemon run as root (notifierd.paths), which the image spells out.
CONFIG = str(SYSTEM_CONFIG)
STATE_DIR = str(SYSTEM_STATE_DIR)
SOCKET = str(SYSTEM_SOCKET)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == keyword]


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (keyword, argument); line
    continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", re.sub(r"(?m)^\s*#.*\n", "", text))
    found: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, argument = line.strip().partition(" ")
        keyword, argument = keyword.upper(), argument.strip()
        if keyword == "FROM":
            words = argument.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append((keyword, argument))
    return found


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for argument in stage.all("ENV"):
        for word in shlex.split(argument):
            name, _, value = word.partition("=")
            env[name] = value
    return env


@pytest.fixture(scope="module")
def image() -> list[Stage]:
    return stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_multi_stage_and_the_final_stage_runs_as_a_user(image: list[Stage]) -> None:
    assert len(image) >= 2
    final = image[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any("useradd" in run and user in run for run in final.all("RUN"))
    # What runs comes from the build stage, built there.
    assert any(f"--from={image[0].name}" in copy for copy in final.all("COPY"))


def test_dependencies_come_from_the_lock_with_hashes(image: list[Stage]) -> None:
    build = image[0]
    assert any(copy.split()[0] == LOCK for copy in build.all("COPY"))
    runs = " ".join(build.all("RUN"))
    assert f"--require-hashes -r {LOCK}" in runs
    # The project itself adds nothing unpinned: no dependency resolution, no build isolation
    # (which would fetch the newest setuptools).
    project = next(run for run in build.all("RUN") if " install --no-deps" in run)
    assert "--no-build-isolation" in project


def test_no_tests_or_benchmarks_in_the_image(image: list[Stage]) -> None:
    for stage in image:
        for copy in stage.all("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if any(w.startswith("--from") for w in copy.split()):
                continue
            for source in words[:-1]:
                assert source not in (".", "./"), f"COPY {copy} copies the whole context"
                assert not source.startswith(("tests", "bench")), copy
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {"tests", "bench"} <= set(ignored)


def test_healthcheck_asks_api_health_with_python(image: list[Stage]) -> None:
    [check] = image[-1].all("HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[:2] == ["python3", "-c"]
    assert "/api/health" in command[2] and "urllib.request" in command[2]
    assert "curl" not in check and "wget" not in check


def test_in_container_paths_are_set_and_agree_with_notifierctl(
    image: list[Stage], monkeypatch: pytest.MonkeyPatch
) -> None:
    final = image[-1]
    env = env_of(final)
    paths = (env["NOTIFIERD_CONFIG"], env["NOTIFIERD_STATE_DIR"], env["NOTIFIERD_SOCKET"])
    assert paths == (CONFIG, STATE_DIR, SOCKET)
    assert any(copy.split()[-1] == CONFIG for copy in final.all("COPY"))
    assert STATE_DIR in " ".join(final.all("VOLUME"))
    # The user owns the state directory and the socket's directory.
    socket_dir = str(Path(SOCKET).parent)
    runs = " ".join(final.all("RUN"))
    assert re.search(rf"chown notifierd:notifierd[^&]*\s{re.escape(STATE_DIR)}(\s|$)", runs)
    assert re.search(rf"chown notifierd:notifierd[^&]*\s{re.escape(socket_dir)}(\s|$)", runs)
    # `docker exec <container> notifierctl status` runs with the image's environment: the
    # settings code finds the same socket the daemon made.
    for name in Settings.model_fields:
        monkeypatch.delenv(f"NOTIFIERD_{name.upper()}", raising=False)
    for name, value in env.items():
        if name.startswith("NOTIFIERD_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.config == Path(CONFIG)
    assert settings.socket_path == Path(SOCKET)
    assert settings.database_path == Path(STATE_DIR) / "notifierd.db"


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    lines = (ROOT / LOCK).read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    pinned: dict[str, str] = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        if not entry.strip():
            continue
        requirement = entry.split(" --hash", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", requirement)
        assert match, f"not pinned to one version: {requirement!r}"
        assert "--hash=sha256:" in entry, f"no hash for {requirement}"
        pinned[normalize(match.group(1))] = match.group(2)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for dependency in project["project"]["dependencies"]:
        name = normalize(re.split(r"[<>=!~;\[ ]", dependency, maxsplit=1)[0])
        assert name in pinned, f"{name} is a dependency but not in {LOCK}"
    # The build backend is locked too: the image builds the project with it.
    assert "setuptools" in pinned
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lock_target = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "pip-compile" in lock_target and "--generate-hashes" in lock_target
    assert f"--output-file {LOCK}" in lock_target


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
