"""ComfyUI's start stays fast with the pack installed: nothing heavy is imported until a model loads.

Every ComfyUI start imports every custom-node pack and prints its import time; the engine, diffusers
and transformers are needed only once "Load SDMatte Model" runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import comfy_host
    before = set(sys.modules)
    host = comfy_host.start_inprocess(comfy_host.make_base_dir(Path({base!r})))
    pack = host.module.__name__
    report = {{
        "pack": pack,
        "nodes": sorted(n for n in host.classes if n.startswith("PromptMatte")),
        "diffusers": "diffusers" in sys.modules,
        "engine": sorted(m for m in sys.modules if m.startswith(pack + ".models")),
        "batch": sorted(m for m in sys.modules if m.startswith(pack + ".batch")),
        "ray": "ray" in sys.modules,
        "transformers_by_comfyui": "transformers" in before or "transformers" in sys.modules,
    }}
    patcher = sys.modules[pack + ".nodes.patcher"]
    net = patcher.network(patcher.load_patcher({checkpoint!r}, "fp32"))
    report["after_load"] = {{"diffusers": "diffusers" in sys.modules, "family": net.family}}
    print(json.dumps(report))
    """
)


def test_starting_comfyui_imports_no_engine_until_a_model_loads(pack, golden_dir, tmp_path):
    tests = str(Path(__file__).resolve().parent)
    script = _SCRIPT.format(tests=tests, base=str(tmp_path / "base"),
                            checkpoint=str(golden_dir / "sdmatte_tiny" / "model.safetensors"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "PromptMatteApply" in report["nodes"] and "PromptMatteModelLoader" in report["nodes"]
    assert report["diffusers"] is False, "importing the pack imported diffusers"
    assert report["engine"] == [], f"importing the pack imported the engine: {report['engine']}"
    assert report["batch"] == [] and report["ray"] is False, "importing the pack imported the batch command or Ray"
    # ...and the first load brings it in, and works
    assert report["after_load"] == {"diffusers": True, "family": "sdmatte"}
