"""The README's two commands, run for real: scripts/run serves ComfyUI with
the pack loaded; scripts/test (and so .ci/run) fails when no test runs, runs
its two lanes (newest libraries, and requirements.txt at its lower bounds)
and fails when either lane fails."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from comfy_host import NODE_IDS, REPO, free_port

pytestmark = pytest.mark.slow


def test_ci_run_calls_exactly_scripts_test():
    lines = [
        ln.strip()
        for ln in (REPO / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    assert lines[-1] == "exec bash scripts/test", lines


def _declared_requirements() -> list[tuple[str, str]]:
    """(name, lower bound) of every line of requirements.txt."""
    out = []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([^\s,;]+)", line)
            assert m, f"requirements.txt: {line!r} is not name>=version"
            out.append((m.group(1), m.group(2)))
    return out


def test_pyproject_mirrors_requirements():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [re.sub(r"\s+", "", d) for d in deps] == [f"{n}>={v}" for n, v in _declared_requirements()]


def test_installed_libraries_match_the_lane():
    """The main lane (.venv) has versions inside the declared ranges; the minimum-versions lane
    (.venv-min, PROMPTMATTE_LANE=min) has exactly the lower bounds: what that lane's tests pass
    on is what requirements.txt claims."""
    from packaging.version import Version

    lane = os.environ.get("PROMPTMATTE_LANE", "main")
    installed = {name: importlib.metadata.version(name) for name, _ in _declared_requirements()}
    print(lane, "lane:", installed)
    for name, low in _declared_requirements():
        have = Version(installed[name])
        if lane == "min":
            assert have == Version(low), f"{name} {have} in the minimum-versions lane, requirements.txt says >={low}"
        else:
            assert have >= Version(low), f"{name} {have} is below requirements.txt's >={low}"


def _scripts_test(comfy_path, *args, lanes=None, timeout=1500):
    env = dict(os.environ, COMFYUI_PATH=str(comfy_path))
    env.pop("PROMPTMATTE_LANE", None)
    env.pop("PROMPTMATTE_LANES", None)
    if lanes is not None:
        env["PROMPTMATTE_LANES"] = lanes
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "test"), *args],
        cwd=str(REPO), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )


# The first call may create .venv-min (a few minutes of pip install).
@pytest.mark.timeout(1600)
def test_scripts_test_runs_both_lanes_and_fails_when_either_fails(comfy_path):
    ok = _scripts_test(comfy_path, "-q", "tests/test_scripts.py::test_installed_libraries_match_the_lane",
                       lanes="main min")
    assert ok.returncode == 0, (ok.stdout[-3000:], ok.stderr[-3000:])
    assert re.search(r"lane main: exit 0", ok.stderr) and re.search(r"lane min: exit 0", ok.stderr), ok.stderr[-3000:]
    assert "lanes: 2 passed, 0 failed" in ok.stdout, ok.stdout[-2000:]
    # the min lane alone failing (here: no test to run) fails the whole run
    bad = _scripts_test(comfy_path, "-q", "tests/test_scripts.py", "-k", "no_such_test_anywhere_zz", lanes="min")
    assert bad.returncode == 1 and "lane min: exit 1" in bad.stderr, (bad.returncode, bad.stderr[-3000:])
    # a failing main lane does not stop the min lane from running, and the run fails
    both = _scripts_test(comfy_path, "-q", "tests/test_scripts.py", "-k", "no_such_test_anywhere_zz", lanes="main,min")
    assert both.returncode == 1, (both.returncode, both.stderr[-3000:])
    assert "lane main: exit 1" in both.stderr and "lane min: exit 1" in both.stderr, both.stderr[-3000:]


def test_a_venv_is_not_built_on_a_disk_without_room(tmp_path):
    """Before pip installs torch (about 6 GB) into a new venv, the scripts check the disk: pip
    running out of space half-way leaves a broken venv behind a long traceback."""

    def check(need_gb: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", 'source scripts/lib.sh && pm_need_disk "$1" && echo "room"', "check", str(tmp_path)],
            cwd=str(REPO), env=dict(os.environ, PROMPTMATTE_VENV_NEED_GB=str(need_gb)),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )

    full = check(10**9)  # more than any disk holds
    assert full.returncode == 1 and "room" not in full.stdout, (full.returncode, full.stdout, full.stderr)
    assert f"GB free on the disk of {tmp_path}" in full.stderr and "needs about 1000000000 GB" in full.stderr
    assert "Free some space" in full.stderr, full.stderr
    roomy = check(0)
    assert roomy.returncode == 0 and roomy.stdout.strip() == "room", (roomy.returncode, roomy.stderr)


@pytest.mark.timeout(300)
def test_scripts_test_fails_when_no_test_runs(comfy_path):
    env = dict(os.environ, COMFYUI_PATH=str(comfy_path))
    r = subprocess.run(
        # only this light file is collected; the -k filter leaves nothing to run (pytest exit 5)
        ["bash", str(REPO / "scripts" / "test"), "-q", "tests/test_scripts.py", "-k", "no_such_test_anywhere_zz"],
        cwd=str(REPO),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert r.returncode == 1, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "collected no tests" in r.stderr


@pytest.mark.timeout(300)
def test_scripts_run_serves_comfyui_with_the_pack(tmp_path, comfy_path):
    port = free_port()
    base = tmp_path / "base"
    env = dict(os.environ, COMFYUI_PATH=str(comfy_path), PYTHONUNBUFFERED="1")
    env.setdefault("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "bash", str(REPO / "scripts" / "run"),
                "--port", str(port),
                "--base-directory", str(base),
                "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}",
                "--disable-api-nodes",
            ],
            cwd=str(REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        info = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/object_info", timeout=5) as r:
                    info = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert info is not None, text[-4000:]
        assert "PromptMatteModelLoader" in info, text[-4000:]
        print("contract node ids served:", [n for n in NODE_IDS if n in info])
        assert f"http://127.0.0.1:{port}" in text
        assert re.search(r"weights:.*\n.*" + re.escape(str(base.resolve() / "models" / "sdmatte")), text), text[:2000]
        assert "(IMPORT FAILED)" not in "\n".join(ln for ln in text.splitlines() if "PromptMatte" in ln)
        import torch

        if not torch.cuda.is_available():
            assert "running with --cpu" in text and "Device: cpu" in text, text[:3000]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
