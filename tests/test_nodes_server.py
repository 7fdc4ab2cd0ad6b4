"""The PromptMatte nodes in a real ComfyUI server: whole graphs from Load Image to Save Image, the
errors users see (and the server staying up), interrupts, and unloading."""

from __future__ import annotations

import io
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from comfy_host import ExecutionFailed, ExecutionInterrupted

pytestmark = [pytest.mark.server, pytest.mark.golden]

CKPT = "sdmatte_tiny.safetensors"
RES = 64
NODE_IDS = {
    "PromptMatteModelLoader": "Load Matting Model",
    "PromptMattePoints": "Matte Prompt: Points",
    "PromptMatteBox": "Matte Prompt: Box",
    "PromptMatteMask": "Matte Prompt: Mask",
    "PromptMatteTrimap": "Matte Prompt: Trimap",
    "PromptMatteApply": "Matting",
    "PromptMatteComposite": "Matte Composite",
    "PromptMatteMetrics": "Matte Metrics",
}
PAINTED = (slice(30, 90), slice(40, 100))  # rows, columns painted in the mask editor


@pytest.fixture(scope="module")
def client(comfy_client):
    return comfy_client


@pytest.fixture(scope="module")
def uploads(client, golden_dir):
    """The golden 128×128 image as a plain PNG, and as Load Image's mask editor saves a painted
    mask (alpha 0 where painted)."""
    rgb = (np.load(golden_dir / "sdmatte_tiny" / "cases.npz")["image"].transpose(1, 2, 0) * 255).round()
    rgb = rgb.astype(np.uint8)
    plain, painted = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb, "RGB").save(plain, format="PNG")
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[PAINTED] = 0
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(painted, format="PNG")
    return {
        "plain": client.upload_image(plain.getvalue(), filename="pm_plain.png")["name"],
        "painted": client.upload_image(painted.getvalue(), filename="pm_painted.png")["name"],
    }


def graph(image: str, prompt_node: dict | None, *, prefix: str, margin: float = 0.1, **apply_kw) -> dict:
    """LoadImage -> [prompt] -> SDMatte Matting -> Matte Composite -> Save Image (rgba), plus the
    alpha saved as a grey image to compare."""
    g = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "PromptMatteModelLoader", "inputs": {"ckpt_name": CKPT, "precision": "auto"}},
        "4": {"class_type": "PromptMatteApply", "inputs": {
            "model": ["2", 0], "image": ["1", 0], "transparent": False, "resolution": RES,
            "resize": "stretch (as the authors)", "focus": "whole image", "margin": margin,
            "merge_objects": False, "caption": "", **apply_kw}},
        "5": {"class_type": "PromptMatteComposite", "inputs": {
            "image": ["1", 0], "alpha": ["4", 0], "background": "transparent", "color": "#000000",
            "estimate_foreground": True}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 2], "filename_prefix": f"{prefix}_rgba"}},
        "7": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": f"{prefix}_alpha"}},
    }
    if prompt_node is not None:
        g["3"] = prompt_node
        g["4"]["inputs"]["prompt"] = ["3", 0]
    return g


def saved(client, result, node: str) -> Image.Image:
    info = result.outputs[node]["images"][0]
    return Image.open(io.BytesIO(client.view(info["filename"], info["subfolder"], info["type"])))


PROMPTS = {
    "points": lambda: {"class_type": "PromptMattePoints", "inputs": {"points": '[{"x": 64, "y": 60}, {"x": 70, "y": 80}]'}},
    "box": lambda: {"class_type": "PromptMatteBox", "inputs": {"x1": 30, "y1": 20, "x2": 110, "y2": 120}},
    "box_from_mask": lambda: {"class_type": "PromptMatteBox", "inputs": {
        "x1": 0, "y1": 0, "x2": 0, "y2": 0, "mask": ["1", 1]}},
    "mask": lambda: {"class_type": "PromptMatteMask", "inputs": {"mask": ["1", 1], "threshold": 0.5}},
    "trimap": lambda: {"class_type": "PromptMatteTrimap", "inputs": {"mask": ["1", 1], "erode": 6, "dilate": 6}},
    "automatic": lambda: None,
}


@pytest.mark.parametrize("kind", list(PROMPTS))
def test_load_prompt_matte_composite_save(client, uploads, kind):
    image = uploads["painted"] if kind in ("box_from_mask", "mask", "trimap") else uploads["plain"]
    result = client.run(graph(image, PROMPTS[kind](), prefix=f"pm_{kind}"))
    rgba = saved(client, result, "6")
    assert rgba.mode == "RGBA" and rgba.size == (128, 128)
    alpha_png = np.asarray(rgba)[..., 3].astype(int)
    alpha_ref = np.asarray(saved(client, result, "8").convert("L")).astype(int)
    assert np.abs(alpha_png - alpha_ref).max() <= 2
    assert alpha_ref.max() > 0  # the tiny random model still gives a non-trivial matte
    assert any(d.get("node") == "4" for d in result.progress)  # the matting node reports progress
    preview = result.outputs["4"]["promptmatte_alpha"][0]  # for the prompt editor's overlay
    grey = Image.open(io.BytesIO(client.view(preview["filename"], preview["subfolder"], preview["type"])))
    assert np.abs(np.asarray(grey).astype(int) - alpha_ref).max() <= 2


def test_object_info_lists_the_nodes(client):
    info = client.object_info()
    for node_id, name in NODE_IDS.items():
        assert node_id in info, node_id
        assert info[node_id]["display_name"] == name
        assert info[node_id]["category"] == "matting/PromptMatte"
    opts = info["PromptMatteModelLoader"]["input"]["required"]["ckpt_name"]
    names = opts[1]["options"] if opts[0] == "COMBO" else opts[0]
    assert CKPT in names and "SDMatte.pth" in names
    assert info["PromptMatteApply"]["output"] == ["MASK", "IMAGE"]
    assert info["PromptMatteComposite"]["output"] == ["IMAGE", "IMAGE", "IMAGE"]


# ------------------------------------------------------------------ bad input, server stays up

def _solid_masks(n: int, value: float, size: int = 128) -> dict:
    return {
        "20": {"class_type": "SolidMask", "inputs": {"value": value, "width": size, "height": size}},
        "21": {"class_type": "MaskToImage", "inputs": {"mask": ["20", 0]}},
        "22": {"class_type": "RepeatImageBatch", "inputs": {"image": ["21", 0], "amount": n}},
        "23": {"class_type": "ImageToMask", "inputs": {"image": ["22", 0], "channel": "red"}},
    }


def bad_cases(uploads):
    plain = uploads["plain"]
    eleven = "[" + ",".join('{"x": %d, "y": 9}' % (i * 9) for i in range(11)) + "]"
    cases = {
        "11 points": (graph(plain, {"class_type": "PromptMattePoints", "inputs": {"points": eleven}}, prefix="bad"),
                      ["at most 10", "remove 1"]),
        "point outside": (graph(plain, {"class_type": "PromptMattePoints", "inputs": {"points": '[{"x": 300, "y": 5}]'}},
                                prefix="bad"), ["outside", "move or remove"]),
        "malformed json": (graph(plain, {"class_type": "PromptMattePoints", "inputs": {"points": '[{"x": 3, "y": }]'}},
                                 prefix="bad"), ["malformed", "expected a list"]),
        "zero-area box": (graph(plain, {"class_type": "PromptMatteBox", "inputs": {"x1": 40, "y1": 10, "x2": 40, "y2": 90}},
                                prefix="bad"), ["zero area"]),
    }
    g = graph(plain, {"class_type": "PromptMatteMask", "inputs": {"mask": ["23", 0], "threshold": 0.5}}, prefix="bad")
    g.update(_solid_masks(1, 0.0))
    cases["empty mask"] = (g, ["empty", "draw the subject"])

    g = graph(plain, {"class_type": "PromptMatteMask", "inputs": {"mask": ["23", 0], "threshold": 0.5, "combine": "each"}},
              prefix="bad")
    g.update(_solid_masks(3, 1.0))
    g["1"] = {"class_type": "EmptyImage", "inputs": {"width": 128, "height": 128, "batch_size": 2, "color": 0}}
    cases["batch mismatch"] = (g, ["batch mismatch", "2 images and 3 prompts"])

    g = graph(plain, None, prefix="bad")
    g["9"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["1", 1]}}
    g["4"]["inputs"]["image"] = ["9", 0]
    cases["rgba image"] = (g, ["4 channels", "RGB"])

    g = graph(plain, None, prefix="bad")
    g["1"] = {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 5, "batch_size": 1, "color": 0}}
    cases["tiny image"] = (g, ["at least 8×8", "upscale"])
    return cases


CASE_NAMES = ["11 points", "point outside", "malformed json", "zero-area box", "empty mask",
              "batch mismatch", "rgba image", "tiny image"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_a_clear_error_and_the_server_stays_up(client, uploads, case):
    prompt, words = bad_cases(uploads)[case]
    with pytest.raises(ExecutionFailed) as e:
        client.run(prompt)
    msg = e.value.exception_message
    for w in words:
        assert w in msg, (w, msg)
    assert "Traceback" not in msg
    client.run(graph(uploads["plain"], None, prefix="after_bad", margin=0.1 + CASE_NAMES.index(case) / 100))


def test_wrong_checkpoint_family(client, uploads, comfy_base_dir):
    from safetensors.torch import save_file
    import torch

    bad = comfy_base_dir / "models" / "sdmatte" / f"sd15_{uuid.uuid4().hex[:6]}.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}, str(bad))
    try:
        g = graph(uploads["plain"], None, prefix="bad")
        g["2"]["inputs"]["ckpt_name"] = bad.name
        with pytest.raises(ExecutionFailed) as e:
            client.run(g)
        assert "SDMatte" in e.value.exception_message
        assert e.value.node_type == "PromptMatteModelLoader"
    finally:
        bad.unlink()
    client.run(graph(uploads["plain"], None, prefix="after_bad", margin=0.5))


# ------------------------------------------------------------------ interrupts and unloading

def test_interrupted_batch_leaves_the_server_answering(client, uploads):
    g = graph(uploads["plain"], None, prefix="long")
    g["1"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 40, "color": 12345}}
    del g["5"], g["6"]
    pid = client.queue(g)
    deadline = time.monotonic() + 120
    while not any(t == "progress" and d.get("node") == "4" for t, d in client.events(pid)):
        assert time.monotonic() < deadline, "the matting node never reported progress"
        time.sleep(0.05)
    client.interrupt()
    with pytest.raises(ExecutionInterrupted):
        client.wait(pid, timeout=120)
    values = [d["value"] for t, d in client.events(pid) if t == "progress" and d.get("node") == "4"]
    assert max(values) < 40  # stopped between items, well before the end
    result = client.run(graph(uploads["plain"], PROMPTS["points"](), prefix="after_interrupt", margin=0.33))
    assert "6" in result.outputs


def test_free_unloads_and_the_next_run_reloads(client, uploads):
    client.run(graph(uploads["plain"], PROMPTS["box"](), prefix="before_free", margin=0.21))
    client.free(unload_models=True, free_memory=True)
    # ComfyUI applies the /free flags when its worker next wakes, which can be right after the next
    # prompt: within two runs the node cache is gone and the loader runs again.
    for attempt in range(3):
        time.sleep(0.5)
        result = client.run(graph(uploads["plain"], PROMPTS["box"](), prefix=f"after_free{attempt}", margin=0.21))
        if "2" in result.executed_nodes:
            break
    assert "2" in result.executed_nodes  # the node cache was dropped: the loader ran again
    assert saved(client, result, "6").mode == "RGBA"
