"""Python side of the browser tests: runs a spec (``node tests/browser/<spec>.mjs <url> <json>``)
with Debian's Chromium driven by playwright-core, and makes the test images.

Nothing is mocked: the specs talk to the real ComfyUI server of the ``comfy_server`` fixture,
which serves the real frontend package from PyPI.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent
REPO = BROWSER_DIR.parent.parent
CHROMIUM = os.environ.get("PROMPTMATTE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "_artifacts"

# The test image: 320×240, a red disc with a yellow block on a blue gradient.
IMAGE_SIZE = (320, 240)
SUBJECT_BOX = (110, 50, 230, 200)  # the disc's bounding box (x1, y1, x2, y2), end-exclusive
SUBJECT_CLICKS = [(170, 120), (160, 40), (200, 160)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_browser() -> None:
    """Fail (in CI) or skip (elsewhere) when Chromium, node or playwright-core is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if shutil.which("node") is None:
        missing.append("node")
    if not (REPO / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append("node_modules/playwright-core")
    if missing:
        msg = f"browser tests need {', '.join(missing)}: run tests/browser/install.sh"
        if _in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def run_spec(spec: str, url: str, config: dict, timeout: float = 900) -> dict:
    """Run tests/browser/<spec> and return the JSON it printed; fails the test with its log."""
    require_browser()
    cmd = ["node", str(BROWSER_DIR / spec), url, json.dumps(config)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{spec} did not finish within {timeout:.0f} s\n--- stderr ---\n{e.stderr}", pytrace=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    data = None
    if lines:
        try:
            data = json.loads(lines[-1])
        except ValueError:
            data = None
    if proc.returncode != 0 or data is None or not data.get("ok"):
        detail = (data or {}).get("error") or proc.stdout[-4000:]
        pytest.fail(
            f"{spec} failed (exit {proc.returncode}):\n{detail}\n--- stderr (tail) ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return data


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def subject_image():
    """RGB test image (PIL)."""
    from PIL import Image, ImageDraw

    w, h = IMAGE_SIZE
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    for y in range(h):
        d.line([(0, y), (w, y)], fill=(40 + y // 3, 90 + y // 4, 160))
    d.ellipse([SUBJECT_BOX[0], SUBJECT_BOX[1], SUBJECT_BOX[2] - 1, SUBJECT_BOX[3] - 1], fill=(230, 60, 50))
    d.rectangle([150, 20, 190, 60], fill=(250, 210, 60))
    return img


def subject_image_with_painted_mask():
    """The test image as ComfyUI's mask editor saves it: alpha 0 where the mask was painted
    (Load Image's MASK = 1 - alpha), here roughly over the disc."""
    from PIL import Image, ImageDraw

    img = subject_image().convert("RGBA")
    alpha = Image.new("L", img.size, 255)
    x1, y1, x2, y2 = SUBJECT_BOX
    ImageDraw.Draw(alpha).ellipse([x1 + 6, y1 + 6, x2 - 7, y2 - 7], fill=0)
    img.putalpha(alpha)
    return img
