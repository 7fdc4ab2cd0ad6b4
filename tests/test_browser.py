"""The Matte Prompt Editor in a real browser (Debian Chromium + playwright-core from npm)
against the real ComfyUI server of the ``comfy_server`` fixture and its PyPI frontend.

The spec (tests/browser/editor.spec.mjs) loads workflows/01_click_matting.json, clicks on the
editor's canvas, checks the stored image-pixel coordinates, save/load, copy-paste and resize,
queues the graph through the frontend and waits for the run; the tests below check what it saw.
tests/browser/editor_resize.spec.mjs puts a core "Upscale Image" node in front of the editor and
checks that the clicks reach the server in the resized image's pixels, on the same content.
"""

from __future__ import annotations

import io
import json

import pytest

import harness

pytestmark = [pytest.mark.server, pytest.mark.slow]

IMAGE_NAME = "promptmatte_editor_subject.png"


@pytest.fixture(scope="module")
def editor_run(comfy_server, comfy_client, comfy_base_dir):
    harness.require_browser()
    if not (comfy_base_dir / "models" / "sdmatte" / "sdmatte_tiny.safetensors").exists():
        pytest.skip("the golden tiny checkpoint is not linked into the test base dir")
    comfy_client.upload_image(harness.png_bytes(harness.subject_image()), filename=IMAGE_NAME)
    harness.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = harness.ARTIFACTS / "editor.png"
    shot.unlink(missing_ok=True)
    config = {
        "workflow": str(harness.REPO / "workflows" / "01_click_matting.json"),
        "image": IMAGE_NAME,
        "size": list(harness.IMAGE_SIZE),
        "targets": [list(p) for p in harness.SUBJECT_CLICKS],
        "ckpt": "sdmatte_tiny.safetensors",
        "resolution": 256,
        "screenshot": str(shot),
        "runTimeoutMs": 240000,
    }
    data = harness.run_spec("editor.spec.mjs", comfy_server.url, config, timeout=600)
    data["_shot"] = shot
    return data


@pytest.mark.timeout(900)
def test_editor_shows_image_from_load_image_and_stores_pixel_clicks(editor_run):
    checks = editor_run["checks"]
    assert checks["image_from_load_image"] is True
    assert checks["clicks_in_image_pixels"] == [{"x": x, "y": y} for x, y in harness.SUBJECT_CLICKS]
    assert checks["stored_size"] == list(harness.IMAGE_SIZE)  # editor_state records the image clicked on
    assert checks["remove_nearest"] is True
    assert "at most 10" in checks["max_points_message"].lower()
    assert checks["box"] is not None and len(checks["box"]) == 4
    assert checks["box_corner_resize"] is True
    assert checks["point_drag"] is True
    assert checks["persistence"] is True
    assert checks["resize_mapping"] is True


@pytest.mark.timeout(900)
def test_editor_run_saves_the_cutout(editor_run, comfy_client):
    from PIL import Image

    saved = [img for out in editor_run["outputs"].values() for img in out.get("images", []) if img.get("type") == "output"]
    assert saved, f"no saved image in the outputs: {json.dumps(editor_run['outputs'])[:2000]}"
    img = Image.open(io.BytesIO(comfy_client.view(saved[0]["filename"], saved[0]["subfolder"], "output")))
    assert img.size == harness.IMAGE_SIZE
    assert img.mode == "RGBA"  # the 'rgba' output of Matte Composite: a transparent cut-out


@pytest.mark.timeout(900)
def test_editor_returns_its_image_to_the_ui(editor_run, comfy_client):
    from PIL import Image

    ui = editor_run["editor_ui"]
    assert ui is not None, "the editor node sent no UI output"
    assert ui["promptmatte_size"] == [list(harness.IMAGE_SIZE)]
    ref = ui["promptmatte_image"][0]
    assert ref["type"] == "temp"
    img = Image.open(io.BytesIO(comfy_client.view(ref["filename"], ref["subfolder"], "temp")))
    assert img.size == harness.IMAGE_SIZE


@pytest.mark.timeout(900)
def test_editor_shows_matte_overlay_after_run(editor_run):
    apply_ui = editor_run.get("apply_ui") or {}
    if not (apply_ui.get("promptmatte_alpha") or apply_ui.get("images")):
        pytest.skip("Matting returns no alpha preview in its UI output (promptmatte_alpha) yet")
    assert editor_run["overlay"] is True
    shot = editor_run["_shot"]
    assert shot.is_file() and shot.stat().st_size > 1000
    assert editor_run["page_errors"] == []


@pytest.mark.timeout(900)
def test_editor_image_after_first_run_when_not_fed_by_load_image(comfy_server, comfy_client):
    """With a processing node between Load Image and the editor, the image shows after a run
    (from the editor's own UI output), at the real image size."""
    harness.require_browser()
    comfy_client.upload_image(harness.png_bytes(harness.subject_image()), filename=IMAGE_NAME)
    data = harness.run_spec(
        "editor_after_run.spec.mjs",
        comfy_server.url,
        {"image": IMAGE_NAME, "size": list(harness.IMAGE_SIZE)},
        timeout=300,
    )
    assert data["before_run"] == "none"
    assert data["after_run"] == "loaded"
    assert data["image_size"] == "{}x{}".format(*harness.IMAGE_SIZE)
    assert data["click"] == {"x": 40, "y": 30}


RESIZED = (160, 120)  # the Upscale Image node halves the 320×240 test image
SQUARE_NAME = "promptmatte_editor_square.png"


def _close_colour(a, b, tol=40):
    return all(abs(int(u) - int(v)) <= tol for u, v in zip(a[:3], b[:3]))


@pytest.mark.timeout(900)
def test_editor_behind_a_resize_node_puts_the_clicks_on_the_same_content(comfy_server, comfy_client, comfy_base_dir):
    """Load Image -> Upscale Image (half size) -> Matte Prompt Editor -> Matting.

    A click made on the Load Image file before the resize node was put in, and a click made on
    the image the editor received after a run, both reach the server (the editor's `points`
    output) in the resized image's pixels, on the same picture content as where they were
    clicked; the editor shows the received image with the clicks where the server put them."""
    from PIL import Image

    harness.require_browser()
    if not (comfy_base_dir / "models" / "sdmatte" / "sdmatte_tiny.safetensors").exists():
        pytest.skip("the golden tiny checkpoint is not linked into the test base dir")
    comfy_client.upload_image(harness.png_bytes(harness.subject_image()), filename=IMAGE_NAME)
    W, H = harness.IMAGE_SIZE
    w, h = RESIZED
    first = harness.SUBJECT_CLICKS[0]  # on the red disc, in the file's pixels
    second = (80, 20)  # on the yellow block, in the resized image's pixels
    other = harness.subject_image().crop((40, 0, 280, 240))  # 240×240: another aspect ratio
    comfy_client.upload_image(harness.png_bytes(other), filename=SQUARE_NAME)
    data = harness.run_spec(
        "editor_resize.spec.mjs",
        comfy_server.url,
        {
            "image": IMAGE_NAME,
            "size": [W, H],
            "scaled": [w, h],
            "first": list(first),
            "second": list(second),
            "other": {"image": SQUARE_NAME, "size": list(other.size)},
            "ckpt": "sdmatte_tiny.safetensors",
            "resolution": 128,
            "runTimeoutMs": 240000,
        },
        timeout=600,
    )
    original = harness.subject_image()

    def received(run):
        ref = run["editor_ui"]["promptmatte_image"][0]
        return Image.open(io.BytesIO(comfy_client.view(ref["filename"], ref["subfolder"], "temp"))).convert("RGB")

    # 1. Fed by Load Image: the click is stored in the file's pixels, with the file's size.
    assert data["first_source"] == "load-image"
    assert data["first_state"] == {"points": [{"x": first[0], "y": first[1]}], "box": None, "width": W, "height": H}
    # 2. Behind Upscale Image: the file is no longer shown (it is not what the editor receives),
    #    the click is kept, and the server scales it to the resized image.
    assert data["dropped_after_rewire"] is True
    assert data["state_after_rewire"] == data["first_state"]
    assert f"clicks made on a {W}×{H} image" in data["status_without_image"]
    run1 = data["run1"]
    assert run1["editor_ui"]["promptmatte_size"] == [[w, h]]
    scaled_first = {"x": first[0] * w / W, "y": first[1] * h / H}
    assert run1["points"] == [scaled_first]
    assert run1["bbox"] == []
    img1 = received(run1)
    assert img1.size == (w, h)
    assert _close_colour(img1.getpixel((int(scaled_first["x"]), int(scaled_first["y"]))), original.getpixel(first))
    # ... and the editor now shows that image, with the click drawn where the server put it.
    assert run1["image_source"] == "run"
    assert run1["clicks"] == "scaled"
    assert run1["drawn"]["points"] == [scaled_first]
    assert f"clicked on {W}×{H}, scaled" in run1["status"]
    # 3. A click on the received image is stored in its pixels (the earlier click moved with it).
    assert data["second_state"] == {
        "points": [scaled_first, {"x": second[0], "y": second[1]}], "box": None, "width": w, "height": h,
    }
    run2 = data["run2"]
    assert run2["points"] == [scaled_first, {"x": second[0], "y": second[1]}]
    assert run2["clicks"] == "same"
    img2 = received(run2)
    yellow = original.getpixel((second[0] * W // w, second[1] * H // h))
    assert _close_colour(yellow, (250, 210, 60)), "the second target is on the yellow block of the file"
    assert _close_colour(img2.getpixel(second), yellow)
    # 4. Load Image straight into the editor again: the clicks are drawn scaled back onto the file,
    #    on the disc and on the block where they were clicked (the state is untouched until an edit).
    back = data["back_on_file"]
    assert back["clicks"] == "scaled"
    assert back["state"] == data["second_state"]
    assert back["drawn"]["points"] == [{"x": first[0], "y": first[1]}, {"x": second[0] * W / w, "y": second[1] * H / h}]
    # 5. Another aspect ratio: the editor warns, the server refuses naming both sizes, Clear + click
    #    stores the click on the new image with its size.
    mm = data["mismatch"]
    assert "another aspect ratio" in mm["status"] and f"{w}×{h}" in mm["status"], mm["status"]
    assert mm["state"] == data["second_state"]
    assert mm["run_error"] and "aspect ratio" in mm["run_error"], mm["run_error"]
    assert f"made on a {w}×{h} image" in mm["run_error"] and "arrived is 240×240" in mm["run_error"]
    # The frontend's error dialog shows the message to the user.
    assert mm["dialog"] and "Press \"Clear\" in the editor" in mm["dialog"], mm["dialog"]
    assert mm["after_clear_and_click"] == {"points": [{"x": 120, "y": 120}], "box": None, "width": 240, "height": 240}
    assert mm["clicks_after"] == "same"
    assert data["page_errors"] == []
