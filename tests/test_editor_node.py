"""The Matte Prompt Editor node on the real server: its outputs (prompt, KJNodes points JSON,
BBOX), the image it sends back to the UI, and its validation messages."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
import harness  # noqa: E402
from comfy_host import ExecutionFailed  # noqa: E402

pytestmark = [pytest.mark.server]

IMAGE_NAME = "promptmatte_node_subject.png"
W, H = harness.IMAGE_SIZE


@pytest.fixture(scope="module")
def uploaded(comfy_client):
    comfy_client.upload_image(harness.png_bytes(harness.subject_image()), filename=IMAGE_NAME)
    return IMAGE_NAME


def editor_prompt(state, image=IMAGE_NAME, with_matting=False):
    """LoadImage -> PromptMatteEditor -> PreviewAny(points), PreviewAny(bbox) [-> matting]."""
    p = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {
            "class_type": "PromptMatteEditor",
            "inputs": {"image": ["1", 0], "editor_state": state if isinstance(state, str) else json.dumps(state)},
        },
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
    }
    if with_matting:
        p["5"] = {"class_type": "PromptMatteModelLoader",
                  "inputs": {"ckpt_name": "sdmatte_tiny.safetensors", "precision": "fp32"}}
        p["6"] = {"class_type": "PromptMatteApply",
                  "inputs": {"model": ["5", 0], "image": ["1", 0], "prompt": ["2", 0], "transparent": False,
                             "resolution": 128, "resize": "stretch (as the authors)", "focus": "whole image",
                             "margin": 0.1, "merge_objects": False}}
        p["7"] = {"class_type": "MaskToImage", "inputs": {"mask": ["6", 0]}}
        p["8"] = {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}
    return p


def text_of(result, node):
    return result.outputs[node]["text"][0]


def test_editor_node_is_registered(comfy_client):
    info = comfy_client.object_info("PromptMatteEditor")["PromptMatteEditor"]
    assert info["display_name"] == "Matte Prompt Editor"
    assert info["category"] == "matting/SDMatte"
    assert info["output"] == ["PROMPTMATTE_PROMPT", "STRING", "BBOX"]
    assert info["output_name"] == ["prompt", "points", "bbox"]
    assert info["input"]["required"]["image"][0] == "IMAGE"
    state = info["input"]["required"]["editor_state"]
    assert state[0] == "STRING" and state[1].get("socketless") is True
    assert json.loads(state[1]["default"]) == {"points": [], "box": None}


def test_points_and_bbox_outputs(comfy_client, uploaded):
    state = {"points": [{"x": 170, "y": 120}, {"x": 160, "y": 40}], "box": [110, 50, 230, 200]}
    r = comfy_client.run(editor_prompt(state))
    assert json.loads(text_of(r, "3")) == [{"x": 170, "y": 120}, {"x": 160, "y": 40}]
    assert json.loads(text_of(r, "4")) == [[110, 50, 230, 200]]


def test_no_box_gives_empty_bbox(comfy_client, uploaded):
    r = comfy_client.run(editor_prompt({"points": [{"x": 5, "y": 6}], "box": None}))
    assert json.loads(text_of(r, "3")) == [{"x": 5, "y": 6}]
    assert json.loads(text_of(r, "4")) == []


def test_editor_sends_its_image_to_the_ui(comfy_client, uploaded):
    from PIL import Image

    r = comfy_client.run(editor_prompt({"points": [{"x": 3, "y": 4}], "box": None}))
    ui = r.outputs["2"]
    assert ui["promptmatte_size"] == [[W, H]]
    ref = ui["promptmatte_image"][0]
    assert ref["type"] == "temp"
    img = Image.open(io.BytesIO(comfy_client.view(ref["filename"], ref["subfolder"], "temp")))
    assert img.size == (W, H)
    assert img.getpixel((170, 120))[:3] == harness.subject_image().getpixel((170, 120))


@pytest.mark.parametrize(
    "state, words",
    [
        ({"points": [{"x": 10 + i, "y": 10} for i in range(11)], "box": None}, ["11 points", "at most 10"]),
        ({"points": [{"x": 5, "y": 5}, {"x": W, "y": 10}], "box": None}, ["point 2", f"outside the {W}×{H} image"]),
        ({"points": [{"x": -1, "y": 10}], "box": None}, ["point 1", "outside"]),
        ({"points": [], "box": [10, 10, W + 40, 100]}, ["box", f"outside the {W}×{H} image"]),
        ("{not json", ["not valid JSON", "Clear"]),
        ({"points": [{"x": "a", "y": 1}], "box": None}, ["point 1 x", "not a number"]),
    ],
    ids=["eleven_points", "point_right_of_image", "negative_point", "box_outside", "bad_json", "non_numeric"],
)
def test_validation_errors_are_clear(comfy_client, uploaded, state, words):
    with pytest.raises(ExecutionFailed) as exc:
        comfy_client.run(editor_prompt(state))
    err = exc.value
    assert err.node_type == "PromptMatteEditor"
    for w in words:
        assert w in err.exception_message, err.exception_message
    assert "Traceback" not in err.exception_message


@pytest.mark.golden
@pytest.mark.parametrize(
    "state",
    [
        {"points": [{"x": 170, "y": 120}, {"x": 160, "y": 40}], "box": None},
        {"points": [], "box": [110, 50, 230, 200]},
        {"points": [{"x": 170, "y": 120}], "box": [110, 50, 230, 200]},
        {"points": [], "box": None},
    ],
    ids=["points", "box", "box_and_points", "empty_is_automatic"],
)
def test_editor_prompt_drives_the_matting_node(comfy_client, comfy_base_dir, uploaded, state):
    if not (comfy_base_dir / "models" / "sdmatte" / "sdmatte_tiny.safetensors").exists():
        pytest.skip("the golden tiny checkpoint is not linked into the test base dir")
    r = comfy_client.run(editor_prompt(state, with_matting=True), timeout=240)
    assert r.outputs["8"]["images"], "the alpha preview was not saved"
