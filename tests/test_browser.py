"""The Matte Prompt Editor in a real browser (Debian Chromium + playwright-core from npm)
against the real ComfyUI server of the ``comfy_server`` fixture and its PyPI frontend.

The spec (tests/browser/editor.spec.mjs) loads workflows/01_click_matting.json, clicks on the
editor's canvas, checks the stored image-pixel coordinates, save/load, copy-paste and resize,
queues the graph through the frontend and waits for the run; the tests below check what it saw.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
import harness  # noqa: E402

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
        pytest.skip("SDMatte Matting returns no alpha preview in its UI output (promptmatte_alpha) yet")
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
