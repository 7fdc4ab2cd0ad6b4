"""Matte Prompt Editor: click points and drag a box on the image, in the node itself.

The browser side (``web/js/promptmatte_editor.js``) draws the image on a canvas inside
the node and keeps what the user clicked in the hidden ``editor_state`` widget, as JSON
in IMAGE PIXELS of the image the clicks were made on, with that image's size:

    {"points": [{"x": 120, "y": 88}, ...], "box": [x1, y1, x2, y2] | null,
     "width": 320, "height": 240, "frame": 0}

so the clicks survive saving, loading, copy-paste and resizing the node. ``frame`` (optional,
0 when absent) is the frame of an image batch (a video's frames) the clicks were made on: the
editor shows a frame chooser once it has received a batch, and the ``frame`` output gives the
index to Matting (video)'s ``prompt_frame``. Points are pixel
indices, the box is end-exclusive. A state without ``width``/``height`` (saved before they
were recorded) is in the pixels of the image this node receives, as it always was.

When the image that arrives has another size than the one clicked on (a resize node such
as core "Upscale Image" in front of the editor), the clicks are scaled to it with the same
arithmetic as :meth:`matting.Prompt.scaled_to` (x · W/w, y · H/h), provided the aspect
ratio is the same to within the rounding of a resize: some scale ``s`` must give both sides
to within one pixel (``|w·s − W| ≤ 1`` and ``|h·s − H| ≤ 1``). Otherwise the image was
cropped, padded or rotated on the way, the clicks cannot be placed on it, and the node
stops with a message saying both sizes and what to do.

This node turns the state into

- ``prompt``: a PROMPTMATTE_PROMPT (list of ``matting.Prompt``) for "Matting";
- ``points``: the clicks as KJNodes Points Editor JSON ``[{"x": .., "y": ..}]``;
- ``bbox``: a BBOX, KJNodes' default format: a list of ``(x_min, y_min, x_max, y_max)``
  (empty list when no box is drawn),

all three in pixels of the image this node receives, so SAM nodes and others can use the
same clicks, and ``frame``: the frame index the clicks belong to. It sends its input image (the
chosen frame of a batch) back to the UI (a PNG in the temp folder, key ``promptmatte_image``, with
its real size in ``promptmatte_size``) so the editor can show the image it received after a run
when it is not fed by a Load Image node; for a batch also small JPEGs of every frame
(``promptmatte_frames``) for the frame chooser.
"""

from __future__ import annotations

import json
import math
import os
import random
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image as PILImage

import folder_paths
from comfy_api.latest import io

from .types import CATEGORY, MattePromptType

try:  # the matting core's public names (matting/__init__.py)
    from ..matting import Prompt, PromptError, parse_points_json
except ImportError:  # pragma: no cover - while the core package is being assembled
    from ..matting.errors import PromptError
    from ..matting.prompt import Prompt, parse_points_json

MAX_POINTS = 10
# The editor preview is for display only: coordinates are always in the full image's pixels.
PREVIEW_MAX_SIDE = 1536
DEFAULT_STATE = '{"points": [], "box": null}'


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.1f}"


# How far a resized image's sides may be from an exact proportional resize (pixels, each side):
# resize nodes round each side to whole pixels (round, floor or ceil), so up to one pixel.
RESIZE_ROUNDING_PX = 1.0


class EditorState(NamedTuple):
    points: list  # [(x, y)] pixels of the image clicked on
    box: tuple | None  # (x1, y1, x2, y2), end-exclusive, or None
    size: tuple | None  # (width, height) of the image clicked on; None for states saved without it
    frame: int = 0  # the frame of a batch the clicks were made on


def _clear_hint() -> str:
    return 'press "Clear" in the editor and click again'


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PromptError(f"Matte Prompt Editor: {what} is {json.dumps(value)}, not a number; {_clear_hint()}")
    if not math.isfinite(value):
        raise PromptError(f"Matte Prompt Editor: {what} is not a finite number; {_clear_hint()}")
    return float(value)


def _side(data: dict, key: str) -> int:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) or v < 1:
        raise PromptError(
            f'Matte Prompt Editor: its stored state has "{key}": {json.dumps(v)}; the width and height of '
            f"the image clicked on must be whole numbers of pixels, at least 1; {_clear_hint()}"
        )
    return int(v)


def parse_editor_state(text) -> EditorState:
    """The editor_state JSON as (points, box, size); raises PromptError with a readable message.

    The points are read by the matting core's :func:`matting.parse_points_json`.
    """
    if text is None or not str(text).strip():
        return EditorState([], None, None)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PromptError(
            f"Matte Prompt Editor: its stored state is not valid JSON ({e.msg} at column {e.colno}); "
            f"{_clear_hint()}"
        ) from None
    if not isinstance(data, dict):
        raise PromptError(
            'Matte Prompt Editor: its stored state must be an object {"points": [...], "box": ...}; '
            f"{_clear_hint()}"
        )
    raw_points = data.get("points") or []
    if not isinstance(raw_points, list):
        raise PromptError(
            'Matte Prompt Editor: "points" in its stored state must be a list of {"x": .., "y": ..}; '
            f"{_clear_hint()}"
        )
    try:
        points = parse_points_json(raw_points, what="its stored state")
    except PromptError as e:
        raise PromptError(f"Matte Prompt Editor: {e}; {_clear_hint()}") from None
    raw_box = data.get("box")
    box = None
    if raw_box is not None:
        if not isinstance(raw_box, (list, tuple)) or len(raw_box) != 4:
            raise PromptError(
                f"Matte Prompt Editor: the box in its stored state must be [x1, y1, x2, y2] or null; {_clear_hint()}"
            )
        x1, y1, x2, y2 = (_number(v, "a box corner in its stored state") for v in raw_box)
        box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    has_w = data.get("width") is not None
    has_h = data.get("height") is not None
    if has_w != has_h:
        missing = "height" if has_w else "width"
        raise PromptError(
            f'Matte Prompt Editor: its stored state has a {"width" if has_w else "height"} but no {missing} '
            f"for the image clicked on; {_clear_hint()}"
        )
    size = (_side(data, "width"), _side(data, "height")) if has_w else None
    frame = data.get("frame", 0)
    if frame is None:
        frame = 0
    if isinstance(frame, bool) or not isinstance(frame, (int, float)) or frame != int(frame) or frame < 0:
        raise PromptError(f'Matte Prompt Editor: its stored state has "frame": {json.dumps(frame)}; the frame '
                          "chosen must be a whole number, 0 or more; choose a frame in the editor again")
    return EditorState(points, box, size, int(frame))


def aspect_matches(clicked_size, received_size, tolerance: float = RESIZE_ROUNDING_PX) -> bool:
    """True when ``received_size`` (W, H) is a proportional resize of ``clicked_size`` (w, h):
    some scale s gives both sides to within ``tolerance`` pixels (|w·s − W| ≤ tol, |h·s − H| ≤ tol)."""
    (w, h), (W, H) = clicked_size, received_size
    lo = max((W - tolerance) / w, (H - tolerance) / h)
    hi = min((W + tolerance) / w, (H + tolerance) / h)
    return lo <= hi + 1e-12


def check_clicked_size(clicked_size, received_size) -> None:
    """Refuse clicks made on an image of another aspect ratio than the one that arrived."""
    if clicked_size is None or tuple(clicked_size) == tuple(received_size):
        return
    if aspect_matches(clicked_size, received_size):
        return
    (w, h), (W, H) = clicked_size, received_size
    raise PromptError(
        f"Matte Prompt Editor: the clicks were made on a {w}×{h} image (width×height), but the image "
        f"that arrived is {W}×{H}, another aspect ratio (a resize keeps it to within "
        f"{RESIZE_ROUNDING_PX:g} pixel of rounding on each side), so it was cropped, padded or rotated on "
        "the way and the clicks cannot be placed on it. Press \"Clear\" in the editor and click again on "
        "the image it shows (when the editor is not fed straight by a Load Image node, run the workflow "
        "once first: it then shows the image this node receives), or make the node in front of the "
        "editor keep the aspect ratio"
    )


def validate_state(points, box, width: int, height: int) -> None:
    """The checks the issue asks for, with messages that say what to do; (width, height) is the
    size of the image the clicks were made on."""
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


def scale_clicks(points, box, clicked_size, received_size):
    """Points and box moved from the pixels of ``clicked_size`` (w, h) to those of
    ``received_size`` (W, H) by :meth:`matting.Prompt.scaled_to` (x · W/w, y · H/h)."""
    (w, h), (W, H) = clicked_size, received_size
    if (w, h) == (W, H):
        return list(points), box
    if points:
        points = list(Prompt.from_points(points, source_size=(h, w)).scaled_to(H, W).points)
    if box is not None:
        box = tuple(Prompt.from_box(*box, source_size=(h, w)).scaled_to(H, W).box)
    return points, box


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


FRAME_PREVIEW_SIDE = 384  # longer side of the frame chooser's pictures (display only)


def _save_frames(image: torch.Tensor) -> dict:
    """Small JPEGs of every frame of a batch in one temp folder, for the editor's frame chooser:
    {"subfolder", "type", "files", "count"}."""
    folder = "promptmatte_frames_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
    full = os.path.join(folder_paths.get_temp_directory(), folder)
    os.makedirs(full, exist_ok=True)
    files = []
    for i in range(int(image.shape[0])):
        arr = np.clip(image[i, ..., :3].detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)
        pil = PILImage.fromarray(np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr)
        scale = min(1.0, FRAME_PREVIEW_SIDE / max(pil.size))
        if scale < 1.0:
            pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), PILImage.BILINEAR)
        name = f"{i:05}.jpg"
        pil.save(os.path.join(full, name), quality=80)
        files.append(name)
    return {"subfolder": folder, "type": "temp", "files": files, "count": len(files)}


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
                io.Image.Input("image", tooltip="The image to click on. A batch (a video's frames): after a run "
                                                "the editor shows a frame chooser; the clicks belong to the "
                                                "frame chosen (the first before that)."),
                io.String.Input(
                    "editor_state",
                    default=DEFAULT_STATE,
                    multiline=False,
                    socketless=True,
                    tooltip=(
                        'Set by the editor: {"points": [{"x", "y"}], "box": [x1, y1, x2, y2] | null, '
                        '"width": W, "height": H, "frame": k} in pixels of the W×H image clicked on (scaled '
                        "to the image that arrives), k the frame of a batch they were made on."
                    ),
                ),
            ],
            outputs=[
                MattePromptType.Output(display_name="prompt", tooltip="The prompt for Matting."),
                io.String.Output(
                    display_name="points",
                    tooltip=(
                        'The clicks as JSON [{"x": .., "y": ..}] in pixels of the image this node receives '
                        "(KJNodes Points Editor format)."
                    ),
                ),
                io.BBOX.Output(
                    display_name="bbox",
                    tooltip=(
                        "The box as a BBOX: a list of (x_min, y_min, x_max, y_max) in pixels of the image "
                        "this node receives, empty without a box."
                    ),
                ),
                io.Int.Output(display_name="frame",
                              tooltip="The frame of the batch the clicks were made on (0 = first): connect it to "
                                      "Matting (video)'s prompt_frame."),
            ],
        )

    @classmethod
    def execute(cls, image, editor_state=DEFAULT_STATE) -> io.NodeOutput:
        if image is None or image.dim() != 4 or image.shape[0] < 1:
            raise PromptError("Matte Prompt Editor: the image input is empty")
        height, width = int(image.shape[1]), int(image.shape[2])
        points, box, clicked, frame = parse_editor_state(editor_state)
        n_frames = int(image.shape[0])
        if frame >= n_frames:
            raise PromptError(f"Matte Prompt Editor: the clicks were made on frame {frame}, but the batch that "
                              f"arrived has {n_frames} frame{'s' if n_frames > 1 else ''} (0 to {n_frames - 1}); "
                              "choose a frame in the editor's frame chooser and click again")
        if clicked is None or not (points or box is not None):
            clicked = (width, height)  # saved without a size: pixels of the image that arrives
        check_clicked_size(clicked, (width, height))
        validate_state(points, box, *clicked)
        # Built where the clicks were made, then moved onto the image that arrived.
        prompt = build_prompt(points, box, *clicked).scaled_to(height, width)
        points, box = scale_clicks(points, box, clicked, (width, height))

        points_json = json.dumps([{"x": _json_number(x), "y": _json_number(y)} for x, y in points])
        bbox = [tuple(_json_number(v) for v in box)] if box is not None else []
        ui = {
            "promptmatte_image": [_save_preview(image[frame:frame + 1])],
            "promptmatte_size": [[width, height]],
        }
        if n_frames > 1:
            ui["promptmatte_frames"] = [_save_frames(image)]
        return io.NodeOutput([prompt], points_json, bbox, frame, ui=ui)
