"""Tests of the test host itself: ComfyUI lookup, the real server fixture and
its client, import-failure detection, the in-process ComfyUI, packaging."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import comfy_host
from comfy_host import (
    PACK_NAME,
    REPO,
    ExecutionFailed,
    PackImportFailed,
    PromptRejected,
    make_base_dir,
    start_server,
)

SESSION_START = time.time()
sys.path.insert(0, str(REPO / "scripts"))
import find_comfyui  # noqa: E402

sys.path.remove(str(REPO / "scripts"))


# --------------------------------------------------------------------------
# ComfyUI lookup (scripts/find_comfyui.py)


def _fake_checkout(path: Path) -> Path:
    """A directory that passes the main.py + comfy/ check (lookup logic only)."""
    (path / "comfy").mkdir(parents=True)
    (path / "main.py").write_text("")
    return path


def test_lookup_prefers_comfyui_path(tmp_path):
    a = _fake_checkout(tmp_path / "A")
    home = tmp_path / "home"
    _fake_checkout(home / "ComfyUI")
    env = {"COMFYUI_PATH": str(a), "HOME": str(home)}
    assert find_comfyui.find_comfyui(tmp_path / "somewhere" / "repo", env) == a.resolve()


def test_lookup_uses_the_comfyui_the_pack_sits_in(tmp_path):
    outer = _fake_checkout(tmp_path / "Outer")
    repo = outer / "custom_nodes" / "PromptMatte"
    repo.mkdir(parents=True)
    home = tmp_path / "home"
    _fake_checkout(home / "ComfyUI")
    assert find_comfyui.find_comfyui(repo, {"HOME": str(home)}) == outer.resolve()
    assert find_comfyui.installed_in_comfyui(outer, repo)
    # a symlinked clone counts where the link sits
    link = outer / "custom_nodes" / "Linked"
    link.symlink_to(tmp_path / "home", target_is_directory=True)
    assert find_comfyui.find_comfyui(link, {"HOME": str(tmp_path / "nohome")}) == outer.resolve()


def test_lookup_falls_back_to_home(tmp_path):
    home = tmp_path / "home"
    c = _fake_checkout(home / "ComfyUI")
    assert find_comfyui.find_comfyui(tmp_path / "repo", {"HOME": str(home)}) == c.resolve()


def test_lookup_failure_explains_how_to_get_comfyui(tmp_path):
    with pytest.raises(find_comfyui.ComfyUINotFound, match="git clone https://github.com/comfyanonymous/ComfyUI"):
        find_comfyui.find_comfyui(tmp_path / "repo", {"HOME": str(tmp_path)})
    # an explicit COMFYUI_PATH that is wrong is an error, not silently replaced
    _fake_checkout(tmp_path / "ComfyUI")
    with pytest.raises(find_comfyui.ComfyUINotFound, match="COMFYUI_PATH"):
        find_comfyui.find_comfyui(tmp_path / "repo", {"HOME": str(tmp_path), "COMFYUI_PATH": str(tmp_path / "nope")})


def test_lookup_command_line(tmp_path):
    script = REPO / "scripts" / "find_comfyui.py"
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    env["HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    if REPO.parent.name == "custom_nodes":
        pytest.skip("this checkout sits in a ComfyUI's custom_nodes/: lookup would find it")
    assert r.returncode == 2
    assert "git clone https://github.com/comfyanonymous/ComfyUI" in r.stderr
    env["COMFYUI_PATH"] = str(comfy_host.comfyui_path())
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and Path(r.stdout.strip()) == comfy_host.comfyui_path()


# --------------------------------------------------------------------------
# packaging


def test_pyproject_metadata():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = data["project"], data["tool"]["comfy"]
    assert project["name"] == "comfyui-promptmatte"
    assert project["version"] == "0.1.0"
    assert comfy["PublisherId"] == "promptmatte"
    assert comfy["DisplayName"] == "PromptMatte — interactive matting (SDMatte, MAM, SEMat, SIM, AIM)"
    for family in ("SDMatte", "LiteSDMatte", "Matting Anything", "SEMat", "SIM", "AIM"):
        assert family in project["description"], f"the pyproject description does not name {family}"
    reqs = [  # pip allows comments after a requirement too
        ln.split("#", 1)[0].strip()
        for ln in (REPO / "requirements.txt").read_text().splitlines()
        if ln.split("#", 1)[0].strip()
    ]
    assert sorted(project["dependencies"]) == sorted(reqs), "pyproject dependencies must mirror requirements.txt"


def test_pyproject_as_comfyui_reads_it(comfy_inprocess):
    """ComfyUI's own registry-config parser accepts our pyproject, and the
    running ComfyUI satisfies requires-comfyui."""
    from comfy_config import config_parser
    import comfyui_version

    cfg = config_parser.extract_node_configuration(str(REPO))
    assert cfg.project.name == "comfyui-promptmatte"
    assert cfg.tool_comfy.publisher_id == "promptmatte"
    spec = cfg.project.supported_comfyui_version
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)", spec)
    assert m, spec
    have = tuple(int(x) for x in comfyui_version.__version__.split(".")[:3])
    assert have >= tuple(int(x) for x in m.groups())


def test_pack_imports_without_comfyui(tmp_path):
    """Importing PromptMatte outside ComfyUI touches no ComfyUI module."""
    (tmp_path / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    code = (
        "import sys, importlib\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"m = importlib.import_module({PACK_NAME!r})\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'comfy', 'comfy_api', 'folder_paths', 'nodes', 'server', 'execution'})\n"
        "assert not bad, bad\n"
        "assert not hasattr(m, 'comfy_entrypoint')\n"
        "print(m.WEB_DIRECTORY)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "./web/js"


def test_pack_fixture(pack):
    assert Path(pack.__file__).resolve() == (REPO / "__init__.py").resolve()
    assert pack.__name__ == PACK_NAME


def test_golden_dir_fixture(golden_dir):
    for name in comfy_host.GOLDEN_MODELS:
        assert (golden_dir / name / "model.safetensors").is_file()


# --------------------------------------------------------------------------
# the real server


def _combo_options(spec) -> list:
    """Options of a combo input in /object_info (old and new formats)."""
    if isinstance(spec, list) and spec:
        if isinstance(spec[0], list):
            return spec[0]
        if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            return spec[1].get("options", [])
    return []


def test_server_lists_pack_nodes(comfy_server, comfy_base_dir):
    info = comfy_server.client.object_info()
    ours = {k: v for k, v in info.items() if v.get("python_module") == f"custom_nodes.{PACK_NAME}"}
    assert "PromptMatteModelLoader" in ours, sorted(ours)
    listed = [n for n in comfy_host.NODE_IDS if n in info]
    print("contract node ids listed:", listed, "missing:", sorted(set(comfy_host.NODE_IDS) - set(listed)))
    # the loader offers the checkpoints in <base>/models/sdmatte
    on_disk = sorted(p.name for p in (comfy_base_dir / "models" / "sdmatte").iterdir())
    if on_disk:
        loader = info["PromptMatteModelLoader"]["input"]
        options = [
            o
            for group in ("required", "optional")
            for spec in loader.get(group, {}).values()
            for o in _combo_options(spec)
        ]
        assert set(on_disk) <= set(options), (on_disk, options)
    assert comfy_server.client.object_info("PromptMatteModelLoader")["PromptMatteModelLoader"]


def _png(width=8, height=6, color=(200, 30, 10)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def test_server_upload_run_view(comfy_server):
    """upload_image -> LoadImage -> ImageInvert -> SaveImage, then view()."""
    from PIL import Image

    c = comfy_server.client
    up = c.upload_image(_png(), filename="host_test.png")
    assert up["name"] == "host_test.png" and up["type"] == "input"
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": up["name"]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "host_test"}},
    }
    res = c.run(prompt, timeout=60)
    assert res.history["status"]["status_str"] == "success"
    img = res.outputs["3"]["images"][0]
    data = c.view(img["filename"], img["subfolder"], img["type"])
    px = Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))
    assert all(abs(a - b) <= 1 for a, b in zip(px, (55, 225, 245))), px
    assert "3" in res.executed_nodes
    assert (comfy_server.base_dir / "output" / img["subfolder"] / img["filename"]).is_file()
    # the same prompt again comes from the cache
    res2 = c.run(prompt, timeout=60)
    assert set(res2.cached_nodes) >= {"1", "2", "3"}


def test_server_rejects_invalid_prompt(comfy_server):
    with pytest.raises(PromptRejected) as ei:
        comfy_server.client.queue({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}}})
    assert "NoSuchNodeAnywhere" in str(ei.value)


def test_server_reports_execution_error(comfy_server):
    """A node raising at run time surfaces as ExecutionFailed with its message."""
    c = comfy_server.client
    up = c.upload_image(_png(), filename="host_error.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": up["name"]}},
        # SaveImage refuses to write outside the output folder (raises at run time)
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../../outside/x"}},
    }
    with pytest.raises(ExecutionFailed) as ei:
        c.run(prompt, timeout=60)
    assert ei.value.node_id == "2" and ei.value.node_type == "SaveImage"
    assert "outside the output folder" in ei.value.exception_message


def test_server_free_and_interrupt(comfy_server):
    c = comfy_server.client
    c.interrupt()  # nothing running: a no-op that must not fail
    c.free(unload_models=True, free_memory=True)
    assert c.system_stats()["system"]["comfyui_version"]


# --------------------------------------------------------------------------
# a broken pack fails the start-up


BROKEN_ENTRYPOINT = '''
async def comfy_entrypoint():
    raise RuntimeError("entrypoint deliberately broken")
'''


def _broken_copy_of_pack(dst: Path) -> Path:
    """This repository as a pack whose __init__.py raises ImportError first."""
    dst.mkdir()
    for entry in REPO.iterdir():
        if entry.name in {"__init__.py", ".git", ".venv", "node_modules"}:
            continue
        (dst / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (dst / "__init__.py").write_text(
        'raise ImportError("PromptMatte deliberately broken by the test suite")\n'
        + (REPO / "__init__.py").read_text()
    )
    return dst


@pytest.mark.timeout(240)
def test_broken_pack_fails_server_startup(tmp_path_factory, comfy_path):
    base = tmp_path_factory.mktemp("comfy-broken")
    packs_dir = tmp_path_factory.mktemp("packs")
    broken = _broken_copy_of_pack(packs_dir / "BrokenMatte")
    entry = packs_dir / "BrokenEntrypoint"
    entry.mkdir()
    (entry / "__init__.py").write_text(BROKEN_ENTRYPOINT)
    make_base_dir(base, packs={"BrokenMatte": broken, "BrokenEntrypoint": entry})

    with pytest.raises(PackImportFailed) as ei:
        start_server(base, packs=("BrokenMatte", "BrokenEntrypoint"), comfy=comfy_path, timeout=120)
    err = ei.value
    assert err.pack == "BrokenMatte"
    assert "BrokenMatte" in str(err)
    assert "deliberately broken by the test suite" in str(err)
    # the entrypoint failure is detected the same way
    hits = comfy_host.pack_import_failures(err.log, base, "BrokenEntrypoint")
    assert any("entrypoint deliberately broken" in h or "IMPORT FAILED" in h for h in hits), hits
    # ... and the healthy pack in the same log is not reported
    assert comfy_host.pack_import_failures(err.log, base, PACK_NAME) == []


# --------------------------------------------------------------------------
# ComfyUI in-process


def test_inprocess_loads_pack(comfy_inprocess, comfy_path):
    import folder_paths
    import nodes

    assert Path(nodes.__file__).resolve().parent == comfy_path
    assert Path(folder_paths.base_path).resolve() == comfy_inprocess.base_dir
    assert "PromptMatteModelLoader" in comfy_inprocess
    cls = comfy_inprocess["PromptMatteModelLoader"]
    assert cls.RELATIVE_PYTHON_MODULE == f"custom_nodes.{PACK_NAME}"
    assert comfy_inprocess.module is not None
    import comfy.model_management as mm

    assert mm.get_torch_device().type == "cpu"


def test_inprocess_runs_v3_and_v1_nodes(comfy_inprocess):
    import torch

    from comfy_api.internal import _ComfyNodeInternal

    # RegexMatch is a V3 node in current ComfyUI (V1 in older releases)
    out = comfy_inprocess.run(
        "RegexMatch", string="Hello", regex_pattern="h.l", case_insensitive=True, multiline=False, dotall=False
    )
    assert tuple(getattr(out, "result", out)) == (True,)
    # our loader is V3: run() goes through PREPARE_CLASS_CLONE + the locked FUNCTION
    assert issubclass(comfy_inprocess["PromptMatteModelLoader"], _ComfyNodeInternal)
    (inv,) = comfy_inprocess.outputs("ImageInvert", image=torch.zeros(1, 2, 2, 3))
    assert torch.equal(inv, torch.ones(1, 2, 2, 3))


def test_nothing_written_to_comfyui(comfy_server, comfy_inprocess, comfy_path):
    """The server and in-process runs leave the ComfyUI checkout untouched."""
    comfy_server.client.system_stats()
    changed = []
    for root, dirs, files in os.walk(comfy_path):
        dirs[:] = [d for d in dirs if d not in {".git", "node_modules"}]
        for name in dirs + files:
            p = os.path.join(root, name)
            try:
                if os.lstat(p).st_mtime >= SESSION_START:
                    changed.append(p)
            except FileNotFoundError:
                pass
    assert not changed, changed[:20]
