"""Shared fixtures for the PromptMatte suite (see tests/comfy_host.py).

Fixtures (all session scope):
  pack            the PromptMatte package imported outside ComfyUI
  golden_dir      Path of the golden fixtures (PROMPTMATTE_GOLDEN or ../shared/golden);
                  skips outside CI when absent, fails in CI (CI=true)
  comfy_path      Path of the ComfyUI checkout used
  comfy_base_dir  the throw-away ComfyUI base directory (custom_nodes/PromptMatte,
                  models/sdmatte/<golden>.safetensors, input/output/temp/user)
  comfy_server    a real ComfyUI server subprocess on that base dir; its
                  ``.client`` is a ComfyClient (queue/wait/run/view/object_info/
                  interrupt/free/upload_image/history/system_stats)
  comfy_inprocess ComfyUI imported in this process with the pack loaded
                  (``.classes``, ``.run(node_id, **inputs)``, ``.module``)
  comfy_client    shortcut for comfy_server.client
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

import pytest

# Keep bytecode of ComfyUI (imported in-process) out of its checkout.
if sys.pycache_prefix is None:
    sys.pycache_prefix = str(Path(__file__).resolve().parent.parent / ".venv" / "pycache")

import comfy_host  # noqa: E402
from comfy_host import (  # noqa: E402
    PACK_NAME,
    REPO,
    ComfyUINotFound,
    golden_path,
    in_ci,
    make_base_dir,
)

_SERVER_KEY = pytest.StashKey[object]()
_LOG_OFFSET = pytest.StashKey[int]()
_running_server = None  # the session ComfyServer, once started


class _RepoRootIsNotAPackage:
    """The repository root holds the pack's __init__.py, so pytest would
    collect it as a Python package and import it (as a module named after the
    clone's folder, with the folder's parent put on sys.path) before the
    tests. Collect it as a plain directory instead."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if Path(path).resolve() == REPO.resolve():
            return pytest.Dir.from_parent(parent, path=Path(path))
        return None


def pytest_configure(config):
    config.pluginmanager.register(_RepoRootIsNotAPackage(), "promptmatte-repo-root")


@pytest.fixture(scope="session")
def comfy_path() -> Path:
    try:
        return comfy_host.comfyui_path()
    except ComfyUINotFound as exc:  # never skip: the suite needs a real ComfyUI
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    path = golden_path()
    if not path.is_dir():
        msg = (
            f"golden fixtures not found at {path} "
            "(set PROMPTMATTE_GOLDEN or put shared/ beside the repository)"
        )
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def pack(tmp_path_factory):
    """PromptMatte imported as a plain package (no ComfyUI), via a temp dir
    holding a symlink ``PromptMatte -> <repo>`` put on sys.path."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    holder = tmp_path_factory.mktemp("pkg")
    (holder / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(holder))
    return importlib.import_module(PACK_NAME)


@pytest.fixture(scope="session")
def comfy_base_dir(tmp_path_factory) -> Path:
    """Throw-away ComfyUI base dir shared by comfy_server and comfy_inprocess."""
    golden = golden_path()
    if not golden.is_dir():
        if in_ci():
            pytest.fail(f"golden fixtures not found at {golden} (required in CI)", pytrace=False)
        golden = None
    return make_base_dir(tmp_path_factory.mktemp("comfy-base"), golden=golden)


@pytest.fixture(scope="session")
def comfy_server(comfy_path, comfy_base_dir):
    """A real ComfyUI server (subprocess) with PromptMatte loaded; fails if
    ComfyUI could not import the pack."""
    global _running_server
    # PROMPTMATTE_COMFY_ARGS: extra main.py arguments, e.g. "--front-end-root DIR"
    extra = shlex.split(os.environ.get("PROMPTMATTE_COMFY_ARGS", ""))
    server = comfy_host.ComfyServer(comfy_base_dir, comfy=comfy_path, extra_args=extra)
    _running_server = server
    try:
        server.start(timeout=float(os.environ.get("PROMPTMATTE_SERVER_TIMEOUT", "120")))
        yield server
    finally:
        server.stop()
        _running_server = None


@pytest.fixture(scope="session")
def comfy_client(comfy_server):
    return comfy_server.client


@pytest.fixture(scope="session")
def comfy_inprocess(pack, comfy_path, comfy_base_dir):
    """ComfyUI imported in-process (CPU, folder_paths on comfy_base_dir) with
    the custom nodes loaded by nodes.init_extra_nodes. Depends on ``pack`` so
    the plain package is imported before ComfyUI is importable."""
    return comfy_host.start_inprocess(comfy_base_dir, comfy=comfy_path)


# --------------------------------------------------------------------------
# show the server log of a failing test


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if _running_server is not None:
        item.stash[_LOG_OFFSET] = len(_running_server.log_text())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    server = _running_server
    if server is None or "comfy_server" not in getattr(item, "fixturenames", ()) and (
        "comfy_client" not in getattr(item, "fixturenames", ())
    ):
        return
    log = server.log_text()
    start = item.stash.get(_LOG_OFFSET, 0)
    during = log[start:]
    before = "\n".join(log[:start].splitlines()[-40:])
    text = (
        f"(log file: {server.log_path})\n--- last lines before this test ---\n{before}\n"
        f"--- during this test ---\n{during}"
    )
    report.sections.append(("ComfyUI server log", text))
