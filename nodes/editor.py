"""Matte Prompt Editor: click points and drag a box on the image, in the node itself.

The browser side (``web/js/promptmatte_editor.js``) draws the image on a canvas inside
the node and keeps what the user clicked in the hidden ``editor_state`` widget, as JSON
in IMAGE PIXELS:

    {"points": [{"x": 120, "y": 88}, ...], "box": [x1, y1, x2, y2] | null}

so the clicks survive saving, loading, copy-paste and resizing the node. This node turns
that state into

- ``prompt``: a PROMPTMATTE_PROMPT (list of ``matting.Prompt``) for "SDMatte Matting";
- ``points``: the clicks as KJNodes Points Editor JSON ``[{"x": .., "y": ..}]``;
- ``bbox``: a BBOX, KJNodes' default format: a list of ``(x_min, y_min, x_max, y_max)``
  (empty list when no box is drawn),

so SAM nodes and others can use the same clicks. It sends its input image back to the
UI (a PNG in the temp folder, key ``promptmatte_image``) so the editor can show the image
after the first run when it is not fed by a Load Image node.
"""

from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import torch
from PIL import Image as PILImage

import folder_paths
from comfy_api.latest import io

from .types import CATEGORY, MattePromptType

try:  # the matting core's public names (matting/__init__.py)
    from ..matting import Prompt, PromptError
except ImportError:  # pragma: no cover - while the core package is being assembled
    from ..matting.errors import PromptError
    from ..matting.prompt import Prompt

MAX_POINTS = 10
# The editor preview is for display only: coordinates are always in the full image's pixels.
PREVIEW_MAX_SIDE = 1536
DEFAULT_STATE = '{"points": [], "box": null}'


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.1f}"


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PromptError(f"Matte Prompt Editor: {what} is {json.dumps(value)}, not a number")
    if not math.isfinite(value):
        raise PromptError(f"Matte Prompt Editor: {what} is not a finite number")
    return float(value)


def parse_editor_state(text) -> tuple[list[tuple[float, float]], tuple[float, float, float, float] | None]:
    """(points, box) from the editor_state JSON; raises PromptError with a readable message."""
    if text is None or not str(text).strip():
        return [], None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PromptError(
            f"Matte Prompt Editor: its stored state is not valid JSON ({e.msg} at column {e.colno}); "
            'press "Clear" in the editor and click again'
        ) from None
    if not isinstance(data, dict):
        raise PromptError(
            'Matte Prompt Editor: its stored state must be an object {"points": [...], "box": ...}; '
            'press "Clear" in the editor'
        )
    raw_points = data.get("points") or []
    if not isinstance(raw_points, list):
        raise PromptError('Matte Prompt Editor: "points" in its state must be a list of {"x": .., "y": ..}')
    points = []
    for i, p in enumerate(raw_points):
        if isinstance(p, dict) and "x" in p and "y" in p:
            x, y = p["x"], p["y"]
        elif isinstance(p, (list, tuple)) and len(p) == 2:
            x, y = p
        else:
            raise PromptError(f"Matte Prompt Editor: point {i + 1} in its state is {json.dumps(p)}, not {{x, y}}")
        points.append((_number(x, f"point {i + 1} x"), _number(y, f"point {i + 1} y")))
    raw_box = data.get("box")
    box = None
    if raw_box is not None:
        if not isinstance(raw_box, (list, tuple)) or len(raw_box) != 4:
            raise PromptError("Matte Prompt Editor: the box in its state must be [x1, y1, x2, y2] or null")
        x1, y1, x2, y2 = (_number(v, "a box corner") for v in raw_box)
        box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return points, box


def validate_state(points, box, width: int, height: int) -> None:
    """The checks the issue asks for, with messages that say what to do."""
    if len(points) > MAX_POINTS:
        raise PromptError(
            f"Matte Prompt Editor: {len(points)} points were clicked, but SDMatte takes at most "
            f"{MAX_POINTS}; right-click points in the editor to remove {len(points) - MAX_POINTS}"
        )
    for i, (x, y) in enumerate(points):
        if not (0 <= x < width and 0 <= y < height):
            raise PromptError(
                f"Matte Prompt Editor: point {i + 1} ({_fmt(x)}, {_fmt(y)}) is outside the "
                f"{width}×{height} image (width×height) — was it clicked on another image? "
                "Right-click it in the editor to remove it, or press Clear"
            )
    if box is not None:
        x1, y1, x2, y2 = box
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise PromptError(
                f"Matte Prompt Editor: the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) goes "
                f"outside the {width}×{height} image (width×height) — was it drawn on another image? "
                "Draw it again or press Clear"
            )
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise PromptError(
                f"Matte Prompt Editor: the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) is "
                "smaller than a pixel; drag a larger box"
            )


def build_prompt(points, box, width: int, height: int) -> Prompt:
    """A box wins over points for the matting prompt (SDMatte takes one kind per run);
    no clicks at all gives the automatic prompt."""
    size = (height, width)
    if box is not None:
        return Prompt.from_box(*box, source_size=size)
    if points:
        return Prompt.from_points(points, source_size=size)
    return Prompt.auto()


def _json_number(v: float):
    return int(v) if float(v).is_integer() else round(float(v), 3)


def _save_preview(image: torch.Tensor) -> dict:
    """First image of the batch as a PNG in the temp folder; returns its /view reference."""
    arr = np.clip(image[0].detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] > 3:
        arr = arr[..., :3]
    pil = PILImage.fromarray(arr)
    w, h = pil.size
    scale = min(1.0, PREVIEW_MAX_SIDE / max(w, h))
    if scale < 1.0:
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), PILImage.BILINEAR)
    temp_dir = folder_paths.get_temp_directory()
    prefix = "PromptMatteEditor_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, temp_dir, w, h)
    os.makedirs(full_folder, exist_ok=True)
    file = f"{filename}_{counter:05}_.png"
    pil.save(os.path.join(full_folder, file), compress_level=1)
    return {"filename": file, "subfolder": subfolder, "type": "temp"}


class PromptMatteEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteEditor",
            display_name="Matte Prompt Editor",
            category=CATEGORY,
            description=(
                "Click on the subject in the image shown in the node: left click adds a point "
                "(at most 10), drag draws or moves a box, right click or shift-click removes the "
                "nearest point. The image shows as soon as a Load Image node feeds it, otherwise "
                "after the first run; after a run the matte is shown over it. Matting uses the box "
                "when one is drawn, else the points; with no clicks it mattes automatically."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The image to click on (the first image of a batch is shown)."),
                io.String.Input(
                    "editor_state",
                    default=DEFAULT_STATE,
                    multiline=False,
                    socketless=True,
                    tooltip='Set by the editor: {"points": [{"x", "y"}], "box": [x1, y1, x2, y2] | null} in image pixels.',
                ),
            ],
            outputs=[
                MattePromptType.Output(display_name="prompt", tooltip="The prompt for SDMatte Matting."),
                io.String.Output(
                    display_name="points",
                    tooltip='The clicks as JSON [{"x": .., "y": ..}] in image pixels (KJNodes Points Editor format).',
                ),
                io.BBOX.Output(
                    display_name="bbox",
                    tooltip="The box as a BBOX: a list of (x_min, y_min, x_max, y_max) pixels, empty without a box.",
                ),
            ],
        )

    @classmethod
    def execute(cls, image, editor_state=DEFAULT_STATE) -> io.NodeOutput:
        if image is None or image.dim() != 4 or image.shape[0] < 1:
            raise PromptError("Matte Prompt Editor: the image input is empty")
        height, width = int(image.shape[1]), int(image.shape[2])
        points, box = parse_editor_state(editor_state)
        validate_state(points, box, width, height)
        prompt = build_prompt(points, box, width, height)

        points_json = json.dumps([{"x": _json_number(x), "y": _json_number(y)} for x, y in points])
        bbox = [tuple(_json_number(v) for v in box)] if box is not None else []
        ui = {
            "promptmatte_image": [_save_preview(image)],
            "promptmatte_size": [[width, height]],
        }
        return io.NodeOutput([prompt], points_json, bbox, ui=ui)
