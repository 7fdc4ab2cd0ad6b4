"""The README's two commands, run for real: scripts/run serves ComfyUI with
the pack loaded; scripts/test (and so .ci/run) fails when no test runs."""

from __future__ import annotations

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
