"""The prompt value type: what the user pointed at, in image pixels.

A :class:`Prompt` holds clicks, a box, a mask or a trimap in the pixel
coordinates of the image they were drawn on (``source_size``). It knows
nothing about the model's working size: :mod:`.render` turns it into the
prompt map and coordinates the network reads, at whatever size the
pipeline works at.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import PromptError
from .masks import UPSTREAM_HINT

LOG = logging.getLogger("PromptMatte")

KINDS = ("point", "box", "mask", "trimap", "auto")
MAX_POINTS = 10  # SDMatte's coordinate embedding has room for 10 clicks


def _fmt(v: float) -> str:
    """A coordinate for a message: integers without a trailing ``.0``."""
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.1f}"


def _as_2d_tensor(value, what: str) -> torch.Tensor:
    """(H, W) float32 CPU tensor from a tensor or array of shape (H, W), (1, H, W) or (H, W, 1)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise PromptError(f"the {what} must be an image-sized array, got {type(value).__name__}")
    t = value.detach()
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    elif t.dim() == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.dim() != 2:
        shape = "×".join(str(s) for s in t.shape)
        raise PromptError(
            f"the {what} has shape {shape}; give one {what} of shape height×width "
            f"(a batch of {what}s makes one prompt per {what})"
        )
    if t.shape[0] < 1 or t.shape[1] < 1:
        raise PromptError(f"the {what} is empty (size {t.shape[0]}×{t.shape[1]})")
    t = t.to(device="cpu", dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise PromptError(f"the {what} contains NaN or infinite values; fix the node that made it")
    return t


@dataclass(frozen=True, eq=False)
class Prompt:
    """One object to matte, described in pixels of the image it was drawn on.

    kind: "point", "box", "mask", "trimap" or "auto".
    points: clicks (x, y) in click order (kind "point"), pixels.
    box: (x1, y1, x2, y2) pixels, x2/y2 end-exclusive (kind "box").
    mask: (H, W) float tensor, binary 0/1 for "mask", 0/0.5/1 for "trimap".
    source_size: (H, W) of the image the coordinates refer to, if known.
    """

    kind: str
    points: tuple = ()
    box: tuple | None = None
    mask: torch.Tensor | None = None
    source_size: tuple | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise PromptError(f"unknown prompt kind {self.kind!r}; use one of {', '.join(KINDS)}")

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_points(cls, points: Iterable[Sequence[float]], source_size=None) -> "Prompt":
        """Clicks on the subject, (x, y) image pixels in click order (1 to 10)."""
        pts = []
        for i, p in enumerate(points):
            try:
                x, y = (float(v) for v in p)
            except (TypeError, ValueError):
                raise PromptError(f"point {i + 1} is {p!r}; a point is a pair of numbers (x, y)") from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise PromptError(f"point {i + 1} ({x}, {y}) is not a finite number pair")
            pts.append((x, y))
        if not pts:
            raise PromptError("no points given; click at least once on the subject to matte")
        if len(pts) > MAX_POINTS:
            extra = len(pts) - MAX_POINTS
            raise PromptError(
                f"{len(pts)} points given, but SDMatte was trained with at most {MAX_POINTS} points; "
                f"remove {extra}"
            )
        size = _check_size(source_size)
        prompt = cls(kind="point", points=tuple(pts), source_size=size)
        if size is not None:
            validate_for_image(prompt, *size)
        return prompt

    @classmethod
    def from_box(cls, x1: float, y1: float, x2: float, y2: float, source_size=None) -> "Prompt":
        """A box around the subject, pixels, (x2, y2) end-exclusive. Corners may come in any order."""
        try:
            vals = [float(v) for v in (x1, y1, x2, y2)]
        except (TypeError, ValueError):
            raise PromptError(f"the box ({x1}, {y1}, {x2}, {y2}) must be four numbers") from None
        if not all(math.isfinite(v) for v in vals):
            raise PromptError(f"the box ({x1}, {y1}, {x2}, {y2}) must be four finite numbers")
        ax1, ay1, ax2, ay2 = vals
        ax1, ax2 = min(ax1, ax2), max(ax1, ax2)
        ay1, ay2 = min(ay1, ay2), max(ay1, ay2)
        if ax2 - ax1 <= 0 or ay2 - ay1 <= 0:
            raise PromptError(
                f"the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) has zero area; "
                "drag a box with a width and a height around the subject"
            )
        size = _check_size(source_size)
        prompt = cls(kind="box", box=(ax1, ay1, ax2, ay2), source_size=size)
        if size is not None:
            validate_for_image(prompt, *size)
        return prompt

    @classmethod
    def from_mask(cls, mask, threshold: float = 0.5) -> "Prompt":
        """A rough mask of the subject; pixels above ``threshold`` count as the subject."""
        t = _as_2d_tensor(mask, "mask")
        threshold = float(threshold)
        if not (0.0 <= threshold < 1.0):
            raise PromptError(f"the mask threshold {threshold} must be at least 0 and below 1")
        binary = (t > threshold).to(torch.float32)
        if not bool(binary.any()):
            raise PromptError(
                f"the mask is empty: no pixel is above the threshold {threshold:g} "
                f"(its largest value is {float(t.max()):.3g}); draw the subject in the mask, "
                f"lower the threshold, or, if a detector made it, {UPSTREAM_HINT}"
            )
        return cls(kind="mask", mask=binary, source_size=(int(t.shape[0]), int(t.shape[1])))

    @classmethod
    def from_trimap(cls, trimap) -> "Prompt":
        """A trimap: 1 sure foreground, 0 sure background, 0.5 unknown (values are snapped)."""
        from .trimap import clean_trimap

        t = clean_trimap(_as_2d_tensor(trimap, "trimap"))
        if not bool((t > 0).any()):
            raise PromptError(
                "the trimap is all background: it has no foreground (white) or unknown (grey) pixels; "
                "paint the subject white and its edges grey"
            )
        return cls(kind="trimap", mask=t, source_size=(int(t.shape[0]), int(t.shape[1])))

    @classmethod
    def auto(cls) -> "Prompt":
        """No prompt: let the model find the salient subject."""
        return cls(kind="auto")

    # ---------------------------------------------------------------- queries
    def bounding_box(self) -> tuple | None:
        """(x1, y1, x2, y2) pixels around what the prompt marks, or None for "auto".

        Points: the box of the clicks (zero-sized for one click). Box: itself.
        Mask: its nonzero pixels, end-exclusive. Trimap: its foreground and unknown pixels.
        """
        if self.kind == "point":
            xs = [p[0] for p in self.points]
            ys = [p[1] for p in self.points]
            return (min(xs), min(ys), max(xs), max(ys))
        if self.kind == "box":
            return tuple(self.box)
        if self.kind in ("mask", "trimap"):
            nz = torch.nonzero(self.mask > 0)
            if nz.numel() == 0:
                return None
            y1, x1 = nz.min(dim=0).values.tolist()
            y2, x2 = nz.max(dim=0).values.tolist()
            return (float(x1), float(y1), float(x2 + 1), float(y2 + 1))
        return None

    # ------------------------------------------------------------- transforms
    def scaled_to(self, height: int, width: int) -> "Prompt":
        """The same prompt in the pixels of an image of size (height, width).

        Points and boxes drawn on an image of ``source_size`` are scaled; without a
        ``source_size`` they are taken to be in (height, width) pixels already.
        Masks and trimaps of another size are resized to (height, width) with nearest-neighbour
        sampling (their 0 / 0.5 / 1 values stay as they are); that is logged, since it usually means
        the mask was made on a resized copy of the image (SAM 2's video segmenter works at 1024²).
        """
        if self.kind in ("point", "box") and self.source_size is not None:
            sh, sw = self.source_size
            if (sh, sw) != (height, width):
                fx, fy = width / sw, height / sh
                if self.kind == "point":
                    pts = tuple((x * fx, y * fy) for x, y in self.points)
                    return replace(self, points=pts, source_size=(height, width))
                x1, y1, x2, y2 = self.box
                return replace(self, box=(x1 * fx, y1 * fy, x2 * fx, y2 * fy), source_size=(height, width))
        if self.kind in ("point", "box", "auto"):
            return replace(self, source_size=(height, width))
        mh, mw = self.mask.shape
        if (mh, mw) == (height, width):
            return self
        stretched = abs(mw / mh - width / height) > 0.01 * (width / height)
        LOG.warning(
            "PromptMatte: the %s prompt is %d×%d but the image is %d×%d (width×height): resized to the image "
            "(nearest)%s", self.kind, mw, mh, width, height,
            "; their aspect ratios differ, so it was stretched" if stretched else "",
        )
        resized = F.interpolate(self.mask[None, None], size=(height, width), mode="nearest-exact")[0, 0]
        return replace(self, mask=resized, source_size=(height, width))

    def cropped(self, x0: int, y0: int, x1: int, y1: int) -> "Prompt":
        """The prompt relative to the crop [x0, x1) × [y0, y1) of its image (integer pixels)."""
        size = (y1 - y0, x1 - x0)
        if self.kind == "point":
            pts = tuple((x - x0, y - y0) for x, y in self.points)
            return replace(self, points=pts, source_size=size)
        if self.kind == "box":
            bx1, by1, bx2, by2 = self.box
            w, h = x1 - x0, y1 - y0
            box = (
                min(max(bx1 - x0, 0.0), w),
                min(max(by1 - y0, 0.0), h),
                min(max(bx2 - x0, 0.0), w),
                min(max(by2 - y0, 0.0), h),
            )
            return replace(self, box=box, source_size=size)
        if self.kind in ("mask", "trimap"):
            return replace(self, mask=self.mask[y0:y1, x0:x1], source_size=size)
        return replace(self, source_size=size)

    def __repr__(self) -> str:
        if self.kind == "point":
            body = ", ".join(f"({_fmt(x)}, {_fmt(y)})" for x, y in self.points)
            desc = f"points=[{body}]"
        elif self.kind == "box":
            desc = "box=(" + ", ".join(_fmt(v) for v in self.box) + ")"
        elif self.kind in ("mask", "trimap"):
            desc = f"mask={tuple(self.mask.shape)}"
        else:
            desc = ""
        size = f", source_size={self.source_size}" if self.source_size else ""
        return f"Prompt({self.kind}{', ' + desc if desc else ''}{size})"


def _check_size(size):
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise PromptError(f"source_size {size!r} must be (height, width)") from None
    if h < 1 or w < 1:
        raise PromptError(f"source_size {size!r} must be positive (height, width)")
    return (h, w)


def parse_points_json(text, what: str = "the points JSON") -> list:
    """Clicks from the Points Editor JSON ``[{"x": 10, "y": 20}, ...]`` (or ``[[10, 20], ...]``).

    ``text`` is the JSON text, or the already decoded list (e.g. the ``"points"`` of the
    Matte Prompt Editor's stored state); ``what`` names where the points come from in the
    error messages. Returns a list of (x, y) float pairs; empty text gives an empty list.
    Raises :class:`PromptError` naming the point, the coordinate and what is wrong with it.
    """
    example = 'expected a list like [{"x": 10, "y": 20}, ...]'

    def json_type(value) -> str:  # the JSON name of a decoded value's type
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, (int, float)):
            return "number"
        if isinstance(value, str):
            return "string"
        return "object" if isinstance(value, dict) else "list"

    if isinstance(text, (list, tuple)):
        data = list(text)
    else:
        if text is None or not str(text).strip():
            return []
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            snippet = e.doc[max(0, e.pos - 15): e.pos + 15].replace("\n", " ")
            raise PromptError(
                f"{what} is malformed at line {e.lineno} column {e.colno} ({e.msg}) near "
                f"{snippet!r}; {example}"
            ) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise PromptError(f"{what} is a {json_type(data)} ({json.dumps(data)[:40]}), not a list; {example}")
    out = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and "x" in item and "y" in item:
            x, y = item["x"], item["y"]
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            x, y = item
        else:
            raise PromptError(
                f"point {i + 1} in {what} is {json.dumps(item)}; "
                'each point must be {"x": number, "y": number} or [x, y]'
            )
        for axis, v in (("x", x), ("y", y)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PromptError(
                    f"point {i + 1} in {what} has {axis} = {json.dumps(v)}, not a number; "
                    'each point must be {"x": number, "y": number} or [x, y]'
                )
            if not math.isfinite(v):
                raise PromptError(
                    f"point {i + 1} in {what} has {axis} = {json.dumps(v)}, not a finite number; "
                    'give pixel coordinates as plain numbers, e.g. {"x": 10, "y": 20}'
                )
        out.append((float(x), float(y)))
    return out


def validate_for_image(prompt: Prompt, height: int, width: int) -> None:
    """Raise :class:`PromptError` if ``prompt`` cannot be used on an image of (height, width).

    Points and boxes are checked in their ``source_size`` pixels when they have one
    (they are scaled to the image later), else in the image's pixels.
    """
    kind = prompt.kind
    if kind == "point":
        if not 1 <= len(prompt.points) <= MAX_POINTS:
            n = len(prompt.points)
            fix = "click at least once on the subject" if n == 0 else f"remove {n - MAX_POINTS}"
            raise PromptError(f"{n} points given; SDMatte was trained with 1 to {MAX_POINTS} points: {fix}")
        h, w = prompt.source_size or (height, width)
        for i, (x, y) in enumerate(prompt.points):
            if not (0 <= x < w and 0 <= y < h):
                raise PromptError(
                    f"point {i + 1} ({_fmt(x)}, {_fmt(y)}) is outside the {w}×{h} image (width×height); "
                    f"clicks must lie within x 0..{w - 1} and y 0..{h - 1}: move or remove it"
                )
    elif kind == "box":
        if prompt.box is None or len(prompt.box) != 4:
            raise PromptError("the box prompt has no box; build it with Prompt.from_box(x1, y1, x2, y2)")
        h, w = prompt.source_size or (height, width)
        x1, y1, x2, y2 = prompt.box
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            raise PromptError(
                f"the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) lies outside the "
                f"{w}×{h} image (width×height); draw it on the subject"
            )
        if min(x2, w) - max(x1, 0) < 1 or min(y2, h) - max(y1, 0) < 1:
            raise PromptError(
                f"the box ({_fmt(x1)}, {_fmt(y1)}, {_fmt(x2)}, {_fmt(y2)}) covers less than one pixel of "
                f"the {w}×{h} image; draw a larger box"
            )
    elif kind in ("mask", "trimap"):
        if not isinstance(prompt.mask, torch.Tensor) or prompt.mask.dim() != 2:
            raise PromptError(f"the {kind} prompt has no (height, width) {kind}; build it with Prompt.from_{kind}")
        # Another size than the image is fine: scaled_to resizes it (and logs that it did).
