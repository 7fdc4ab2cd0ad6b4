"""The Matte Prompt Editor node on the real server: its outputs (prompt, KJNodes points JSON,
BBOX), the image it sends back to the UI, its validation messages, and clicks made on an image
of another size than the one that arrives (a resize node in front of the editor)."""

from __future__ import annotations

import io
import json

import pytest

import harness
from comfy_host import ExecutionFailed

pytestmark = [pytest.mark.server]

IMAGE_NAME = "promptmatte_node_subject.png"
W, H = harness.IMAGE_SIZE


@pytest.fixture(scope="module")
def uploaded(comfy_client):
    comfy_client.upload_image(harness.png_bytes(harness.subject_image()), filename=IMAGE_NAME)
    return IMAGE_NAME


def editor_prompt(state, image=IMAGE_NAME, with_matting=False, resize=None):
    """LoadImage [-> ImageScale] -> PromptMatteEditor -> PreviewAny(points), PreviewAny(bbox),
    PreviewAny(prompt) [-> matting].

    resize: (width, height[, crop]) for a core "Upscale Image" (ImageScale) node in front of
    the editor, crop "disabled" (a stretch) or "center"."""
    p = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {
            "class_type": "PromptMatteEditor",
            "inputs": {"image": ["1", 0], "editor_state": state if isinstance(state, str) else json.dumps(state)},
        },
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    if resize is not None:
        w, h, crop = (*resize, "disabled")[:3]
        p["10"] = {"class_type": "ImageScale",
                   "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "width": w, "height": h,
                              "crop": crop}}
        p["2"]["inputs"]["image"] = ["10", 0]
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
    assert info["category"] == "matting/PromptMatte"
    assert info["output"] == ["PROMPTMATTE_PROMPT", "STRING", "BBOX", "INT"]  # frame: added after the first three
    assert info["output_name"] == ["prompt", "points", "bbox", "frame"]
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
        ({"points": [{"x": "a", "y": 1}], "box": None}, ["point 1", 'x = "a"', "not a number", "Clear"]),
        ({"points": [{"x": 1}], "box": None}, ["point 1", '{"x": 1}', '{"x": number, "y": number}', "Clear"]),
        ({"points": {"x": 1, "y": 2, "z": 3}, "box": None}, ['"points"', "must be a list", "Clear"]),
        ({"points": [], "box": [1, 2, 3]}, ["box", "[x1, y1, x2, y2]", "Clear"]),
        ({"points": [{"x": 5, "y": 5}], "box": None, "width": 0, "height": 240},
         ['"width": 0', "whole numbers of pixels", "Clear"]),
        ({"points": [{"x": 5, "y": 5}], "box": None, "width": 320.5, "height": 240},
         ['"width": 320.5', "whole numbers"]),
        ({"points": [{"x": 5, "y": 5}], "box": None, "width": 320}, ["a width but no height", "Clear"]),
        ({"points": [{"x": 5, "y": 300}], "box": None, "width": 320, "height": 240},
         ["point 1 (5, 300)", f"outside the {W}×{H} image"]),
    ],
    ids=["eleven_points", "point_right_of_image", "negative_point", "box_outside", "bad_json", "non_numeric",
         "point_without_y", "points_not_a_list", "box_of_three", "zero_width", "fractional_width",
         "width_without_height", "point_outside_its_own_size"],
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


# ------------------------------------------------------- clicks made on an image of another size

CLICKS = [(170, 120), (160, 40)]  # on the red disc and on the yellow block of the 320×240 image
BOX = (110, 50, 230, 200)


def sized_state(points=CLICKS, box=BOX, size=(W, H)):
    state = {"points": [{"x": x, "y": y} for x, y in points], "box": list(box) if box else None}
    if size is not None:
        state["width"], state["height"] = size
    return state


def received_image(comfy_client, result):
    from PIL import Image

    ref = result.outputs["2"]["promptmatte_image"][0]
    return Image.open(io.BytesIO(comfy_client.view(ref["filename"], ref["subfolder"], "temp"))).convert("RGB")


def close_colour(a, b, tol=40):
    return all(abs(int(u) - int(v)) <= tol for u, v in zip(a[:3], b[:3]))


@pytest.mark.parametrize(
    "size",
    [(160, 120), (640, 480), (106, 79), (319, 240)],
    ids=["half", "double", "a_third_rounded", "one_pixel_narrower"],
)
def test_clicks_are_scaled_to_the_image_that_arrives(comfy_client, uploaded, size):
    """Clicked on the 320×240 Load Image file, received through "Upscale Image": the prompt, the
    points and the bbox come out in the received image's pixels (x·W/w, y·H/h), on the same content."""
    rw, rh = size
    fx, fy = rw / W, rh / H
    r = comfy_client.run(editor_prompt(sized_state(), resize=size))
    assert r.outputs["2"]["promptmatte_size"] == [[rw, rh]]
    got_points = json.loads(text_of(r, "3"))
    assert [(p["x"], p["y"]) for p in got_points] == [
        (pytest.approx(x * fx, abs=1e-3), pytest.approx(y * fy, abs=1e-3)) for x, y in CLICKS
    ]
    (bbox,) = json.loads(text_of(r, "4"))
    assert bbox == pytest.approx([BOX[0] * fx, BOX[1] * fy, BOX[2] * fx, BOX[3] * fy], abs=1e-3)
    # The prompt (a box wins over points) is in the received pixels too.
    prompt_text = text_of(r, "9")
    assert f"source_size=({rh}, {rw})" in prompt_text, prompt_text
    assert "box=" in prompt_text
    # Same content: the received image at the scaled click has the colour of the original at the click.
    original = harness.subject_image()
    got = received_image(comfy_client, r)
    assert got.size == (rw, rh)
    for (x, y), p in zip(CLICKS, got_points):
        assert close_colour(got.getpixel((int(p["x"]), int(p["y"]))), original.getpixel((x, y))), (x, y, p)


def test_points_prompt_is_scaled_when_there_is_no_box(comfy_client, uploaded):
    r = comfy_client.run(editor_prompt(sized_state(box=None), resize=(160, 120)))
    assert json.loads(text_of(r, "3")) == [{"x": 85, "y": 60}, {"x": 80, "y": 20}]
    assert json.loads(text_of(r, "4")) == []
    prompt_text = text_of(r, "9")
    assert "points=[(85, 60), (80, 20)]" in prompt_text and "source_size=(120, 160)" in prompt_text, prompt_text


def test_clicks_made_on_the_received_size_are_unchanged(comfy_client, uploaded):
    r = comfy_client.run(editor_prompt(sized_state(points=[(85, 60)], box=None, size=(160, 120)), resize=(160, 120)))
    assert json.loads(text_of(r, "3")) == [{"x": 85, "y": 60}]


@pytest.mark.parametrize(
    "size, crop",
    [((240, 240), "center"), ((240, 320), "disabled"), ((316, 240), "disabled")],
    ids=["square_crop", "portrait", "four_pixels_narrower"],
)
def test_another_aspect_ratio_is_refused_with_both_sizes(comfy_client, uploaded, size, crop):
    with pytest.raises(ExecutionFailed) as exc:
        comfy_client.run(editor_prompt(sized_state(), resize=(*size, crop)))
    err = exc.value
    assert err.node_type == "PromptMatteEditor"
    msg = err.exception_message
    for words in (f"made on a {W}×{H} image", f"arrived is {size[0]}×{size[1]}", "aspect ratio",
                  "1 pixel of rounding", "Clear", "run the workflow once"):
        assert words in msg, msg
    assert "Traceback" not in msg


def test_an_empty_state_with_a_size_works_on_any_image(comfy_client, uploaded):
    """Nothing to place: no clicks made on another image stop a run (automatic prompt)."""
    r = comfy_client.run(editor_prompt(sized_state(points=[], box=None), resize=(240, 240, "center")))
    assert json.loads(text_of(r, "3")) == [] and json.loads(text_of(r, "4")) == []
    assert "Prompt(auto" in text_of(r, "9")


def test_old_state_without_size_is_in_the_received_pixels(comfy_client, uploaded):
    """States saved before width/height were recorded keep their meaning: pixels of the image
    that arrives (no scaling), and a click outside it is refused as before."""
    r = comfy_client.run(editor_prompt(sized_state(points=[(100, 100)], box=(10, 10, 50, 40), size=None),
                                       resize=(160, 120)))
    assert json.loads(text_of(r, "3")) == [{"x": 100, "y": 100}]
    assert json.loads(text_of(r, "4")) == [[10, 10, 50, 40]]
    with pytest.raises(ExecutionFailed) as exc:
        comfy_client.run(editor_prompt(sized_state(points=CLICKS, box=None, size=None), resize=(160, 120)))
    assert "point 1 (170, 120) is outside the 160×120 image" in exc.value.exception_message
