"""The other families through a real ComfyUI server, as a user's graphs run them (tiny golden
checkpoints in the server's models/matting and models/sams, see tests/tiny_families.py):

- MAM: Load Image -> Matte Prompt: Box -> Matting;
- SEMat: Load Image -> Matte Prompt Editor (a box) -> Matting;
- SIM: Load Image -> Matte Prompt: Trimap (from the painted mask) -> Matting, semantic classes saved;
- AIM: Load Image -> Matting with nothing connected.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import tiny_families
from comfy_host import ExecutionFailed

pytestmark = [pytest.mark.server, pytest.mark.golden]
HEIGHT, WIDTH = 136, 160  # AIM takes at least 128 px per side
PAINTED = (slice(25, 95), slice(40, 120))  # rows, columns painted in Load Image's mask editor


@pytest.fixture(scope="module")
def names(comfy_base_dir):
    return tiny_families.install(comfy_base_dir / "models")


@pytest.fixture(scope="module")
def upload(comfy_client):
    """A smooth random RGB image with a painted mask (alpha 0 where painted, as the mask editor saves)."""
    rng = np.random.default_rng(3)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    rgb = np.asarray(small.resize((WIDTH, HEIGHT), Image.BILINEAR))
    alpha = np.full((HEIGHT, WIDTH), 255, np.uint8)
    alpha[PAINTED] = 0
    data = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(data, format="PNG")
    return comfy_client.upload_image(data.getvalue(), filename="pm_families.png")["name"]


def graph(image: str, ckpt: str, prompt_node: dict | None, prefix: str) -> dict:
    g = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "PromptMatteModelLoader", "inputs": {"ckpt_name": ckpt, "precision": "auto",
                                                                 "companion": "auto"}},
        "4": {"class_type": "PromptMatteApply", "inputs": {
            "model": ["2", 0], "image": ["1", 0], "transparent": False, "resolution": 1024,
            "resize": "stretch (as the authors)", "focus": "whole image", "margin": 0.1,
            "merge_objects": False, "caption": ""}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"{prefix}_alpha"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["4", 1], "filename_prefix": f"{prefix}_classes"}},
    }
    if prompt_node is not None:
        g["3"] = prompt_node
        g["4"]["inputs"]["prompt"] = ["3", 0]
    return g


def saved(client, result, node: str) -> np.ndarray:
    info = result.outputs[node]["images"][0]
    return np.asarray(Image.open(io.BytesIO(client.view(info["filename"], info["subfolder"], info["type"]))))


def source_rgb(client, image: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(client.view(image, "", "input"))).convert("RGB"))


BOX = {"class_type": "PromptMatteBox", "inputs": {"x1": 40, "y1": 25, "x2": 120, "y2": 95}}
EDITOR_BOX = {"class_type": "PromptMatteEditor",
              "inputs": {"image": ["1", 0], "editor_state": json.dumps({"points": [], "box": [40, 25, 120, 95]})}}
TRIMAP = {"class_type": "PromptMatteTrimap", "inputs": {"mask": ["1", 1], "erode": 6, "dilate": 6}}
CASES = {"mam": BOX, "semat": EDITOR_BOX, "sim": TRIMAP, "aim": None}


@pytest.mark.parametrize("family", list(CASES))
def test_family_graph_runs_on_the_server(comfy_client, names, upload, family):
    if family not in names:
        pytest.fail(f"the {family} golden fixtures are missing from this checkout")
    result = comfy_client.run(graph(upload, names[family], CASES[family], f"pm_{family}"), timeout=600)
    alpha = saved(comfy_client, result, "6")
    assert alpha.shape[:2] == (HEIGHT, WIDTH)
    assert alpha.max() > alpha.min()  # a tiny random model still gives a non-constant matte
    classes = saved(comfy_client, result, "7")[..., :3].astype(int)
    rgb = source_rgb(comfy_client, upload).astype(int)
    moved = np.abs(classes - rgb).max(axis=-1) > 1
    if family == "sim":  # the unknown band coloured by class, the rest the image
        band = np.zeros((HEIGHT, WIDTH), bool)
        band[PAINTED[0].start - 6:PAINTED[0].stop + 6, PAINTED[1].start - 6:PAINTED[1].stop + 6] = True
        band[PAINTED[0].start + 6:PAINTED[0].stop - 6, PAINTED[1].start + 6:PAINTED[1].stop - 6] = False
        assert moved[band].mean() > 0.8 and not moved[~band].any()
    else:
        assert not moved.any()


def test_wrong_kind_is_refused_and_the_server_stays_up(comfy_client, names, upload):
    with pytest.raises(ExecutionFailed) as failed:
        comfy_client.run(graph(upload, names["sim"], BOX, "pm_sim_box"), timeout=600)
    assert "'Matte Prompt: Trimap'" in failed.value.exception_message
    assert "PromptMatteApply" in comfy_client.object_info("PromptMatteApply")  # still serving
