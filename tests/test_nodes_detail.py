"""The Matting node's ``detail`` input and memory at 6000x4000: in a real ComfyUI (in-process) and,
for the peak memory, in a child process (tests/peak_memory.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import tiny_families
from peak_memory import measure_in_child

REPO = Path(__file__).resolve().parent.parent
LIMIT = 8 * 1024**3  # issue 23: any family at 6000x4000 within 8 GB peak RSS, the image included


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


def test_detail_is_the_last_input_optional_and_guided_by_default(c):
    info = c["PromptMatteApply"].GET_NODE_INFO_V1()
    order = info["input_order"]
    assert order["optional"][-1] == "detail"  # appended: saved workflows keep their widget values
    spec = info["input"]["optional"]["detail"]
    assert spec[1]["options"] == ["off", "guided", "refine"] and spec[1]["default"] == "guided"


@pytest.mark.golden
def test_sim_at_full_size_too_large_is_refused_before_computing_with_what_fits(c, comfy_base_dir):
    names = tiny_families.install(comfy_base_dir / "models", ["sim"])
    (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name=names["sim"], precision="auto", companion="auto")
    image = torch.zeros(1, 4000, 6000, 3)
    trimap = torch.zeros(1, 4000, 6000)
    trimap[:, 1000:3000, 2000:4000] = 1.0
    prompt, _ = c.outputs("PromptMatteTrimap", mask=trimap, erode=2, dilate=2)
    with pytest.raises(ValueError) as caught:
        c.outputs("PromptMatteApply", model=patcher, image=image, prompt=prompt, transparent=False, resolution=1024,
                  resize="stretch (as the authors)", focus="whole image", margin=0.1, merge_objects=False,
                  caption="", detail="off")
    message = str(caught.value)
    assert "Semantic Image Matting" in message or "SIM" in message
    assert "6000×4000" in message and "GB of working memory" in message and "fits" in message
    assert "detail 'guided'" in message


CHILD = '''
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bench_detail", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
print(json.dumps(bench.family_run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), "guided")))
'''


@pytest.mark.slow
@pytest.mark.golden
@pytest.mark.timeout(900)
def test_6000x4000_with_detail_guided_stays_within_8_gb(pack, golden_dir, tmp_path_factory):
    """One measured run, of the family with the highest peak: SIM, whose memory grows with the
    image and is capped on the detail path, plus the guided filter at 24 MP that every family
    shares (bench/bench_detail.py measures every family: 2.3-3.4 GB, SIM highest)."""
    family = "sim"
    spec = importlib.util.spec_from_file_location("bench_detail", REPO / "bench" / "bench_detail.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    files = bench.tiny_files(tmp_path_factory.mktemp("tiny"), golden_dir)
    bench.cases_module().cached_scene(4000, 6000)  # drawn once per machine, outside the measured child
    result = measure_in_child(pack, CHILD, REPO / "bench" / "bench_detail.py", family, files[family], 4000, 6000,
                              timeout=900)
    assert 0 < result["peak_rss"] <= LIMIT, f"{family} peaked at {result['peak_rss'] / 1e9:.2f} GB"

