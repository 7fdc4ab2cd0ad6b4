"""The resize / crop / batch pipeline around a matting model.

``matte`` pairs images with prompts, fits each (image, prompt) item to the
model's working size (stretched to a square as the authors do, or with its aspect
ratio kept), optionally crops around the prompt first, calls the model in chunks
of items that share a working size and prompt kind, and resizes each alpha back
(pasting it into the crop's place in an otherwise transparent canvas).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from . import detail as full_detail
from .errors import PromptError
from .prompt import KINDS, Prompt, validate_for_image
from .render import model_kind, render_prompt

RESIZE_MODES = ("stretch", "keep_aspect")
FOCUS_MODES = ("whole", "crop")
MIN_IMAGE_SIDE = 8
MIN_CROP_SIDE = 64  # smallest crop (px of the image) focus="crop" cuts out
POINT_CROP_FRACTION = 0.5  # clicks say where the subject is, not how big: crops around clicks span >= half the image


def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise PromptError(f"the image must be a tensor (batch, height, width, 3), got {type(images).__name__}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise PromptError(
            f"the image has shape {tuple(images.shape)}; expected (batch, height, width, 3) as ComfyUI images are"
        )
    b, h, w, c = images.shape
    if b == 0:
        raise PromptError("the image batch is empty; connect at least one image")
    if c == 4:
        raise PromptError(
            "the image has 4 channels (RGBA); convert it to RGB first, e.g. drop the alpha channel "
            "(image[..., :3]) or composite it over a background, then matte the RGB image"
        )
    if c == 1:
        images = images.expand(b, h, w, 3)
    elif c != 3:
        raise PromptError(f"the image has {c} channels; matting needs RGB images with 3 channels")
    if h < MIN_IMAGE_SIDE or w < MIN_IMAGE_SIDE:
        raise PromptError(
            f"the image is {w}×{h} pixels (width×height); it must be at least "
            f"{MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE}: upscale it first"
        )
    if not images.is_floating_point():
        images = images.to(torch.float32)
    if torch.isnan(images).any():
        n = [int(torch.isnan(images[i]).any()) for i in range(b)]
        bad = [str(i) for i, v in enumerate(n) if v]
        raise PromptError(
            f"image {', '.join(bad)} of the batch contains NaN pixels; fix the node that produced it "
            "(e.g. a VAE decode in a precision that overflowed)"
        )
    return images


def pair_prompts(n_images: int, prompts, merge_objects: bool):
    """[(image index, prompt, output index)] (one item per forward pass), number of outputs."""
    if prompts is None:
        prompts = []
    if isinstance(prompts, Prompt):
        prompts = [prompts]
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, Prompt):
            raise PromptError(f"prompt {i + 1} is a {type(p).__name__}, not a PromptMatte prompt")
    if not prompts:
        return [(i, Prompt.auto(), i) for i in range(n_images)], n_images
    if len(prompts) == 1:
        return [(i, prompts[0], i) for i in range(n_images)], n_images
    if len(prompts) == n_images:
        return [(i, p, i) for i, p in enumerate(prompts)], n_images
    if n_images == 1:
        if merge_objects:
            return [(0, p, 0) for p in prompts], 1
        return [(0, p, j) for j, p in enumerate(prompts)], len(prompts)
    raise PromptError(
        f"batch mismatch: {n_images} images and {len(prompts)} prompts; give one prompt, one per image, "
        "or one image with several prompts"
    )


def working_size(height: int, width: int, resolution: int, resize: str) -> tuple[int, int]:
    """(H, W) the model works at for an image (or crop) of (height, width)."""
    if resize == "stretch":
        return (resolution, resolution)
    scale = resolution / max(height, width)
    h = max(8, int(round(height * scale / 8)) * 8)
    w = max(8, int(round(width * scale / 8)) * 8)
    return (h, w)


def _fit_span(lo: float, hi: float, n: int, min_len: float) -> tuple[int, int]:
    """Integer span [a, b) inside [0, n) covering lo..hi, at least min_len long, shifted (not cut) at borders."""
    length = max(hi - lo, min(min_len, n))
    center = (lo + hi) / 2
    a = center - length / 2
    b = center + length / 2
    if a < 0:
        a, b = 0.0, b - a
    if b > n:
        a, b = a - (b - n), float(n)
    a = max(0, int(math.floor(a + 1e-6)))
    b = min(n, int(math.ceil(b - 1e-6)))
    return a, max(b, a + 1)


def crop_box(prompt: Prompt, height: int, width: int, margin: float, square: bool) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer crop around ``prompt`` (in image pixels) for focus="crop".

    The prompt's bounding box grown by ``margin`` × its longer side on every side,
    at least ``MIN_CROP_SIDE`` px (and half the longer image side around clicks),
    made square when ``square`` (for stretch resizing), shifted to stay inside the image.
    Trimap and automatic prompts use the whole image.
    """
    bb = prompt.bounding_box() if prompt.kind in ("point", "box", "mask") else None
    if bb is None:
        return (0, 0, width, height)
    x1, y1, x2, y2 = bb
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    if prompt.kind == "point":  # a click is a pixel: cover it
        x2, y2 = min(x2 + 1, width), min(y2 + 1, height)
    side = max(x2 - x1, y2 - y1)
    grow = margin * side
    x1, y1, x2, y2 = x1 - grow, y1 - grow, x2 + grow, y2 + grow
    min_side = float(MIN_CROP_SIDE)
    if prompt.kind == "point":
        min_side = max(min_side, POINT_CROP_FRACTION * max(height, width))
    if square:
        side = max(x2 - x1, y2 - y1, min_side)
        min_w = min_h = side
    else:
        min_w = min_h = min_side
    cx0, cx1 = _fit_span(x1, x2, width, min_w)
    cy0, cy1 = _fit_span(y1, y2, height, min_h)
    return (cx0, cy0, cx1, cy1)


def _resize(x: torch.Tensor, size, mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "bilinear":
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    return F.interpolate(x, size=tuple(size), mode=mode)


def matte(
    model_fn: Callable,
    images: torch.Tensor,
    prompts: Sequence[Prompt] | Prompt | None = None,
    *,
    resolution: int = 1024,
    resize: str = "stretch",
    focus: str = "whole",
    margin: float = 0.1,
    transparent: bool | Sequence[bool] = False,
    merge_objects: bool = False,
    chunk_size: int = 1,
    on_item: Callable[[int, int], None] | None = None,
    at_input_size: bool = False,
    on_chunk: Callable[[list], None] | None = None,
    detail: str = "off",
    detail_size: Callable[[int, int], tuple[int, int]] | None = None,
    prompt_kinds: Sequence[str] = KINDS,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Alpha mattes (N, H, W) float32 in [0, 1] for ComfyUI images (B, H, W, 3) in [0, 1].

    model_fn(image (b,3,h,w), prompt_map (b,1,h,w), coords (b,20)|(b,4), kind, transparent (b,) bool)
    -> alpha (b,1,h,w).
    Pairing: no prompt → automatic on every image; one prompt → every image; one prompt per
    image; one image with several prompts → one alpha per prompt (their union, the pixelwise
    maximum, if ``merge_objects``).
    ``transparent``: one flag for all, or one per (image, prompt) item.
    ``on_item(done, total)`` is called after every model call with the items done so far.
    ``at_input_size``: for families that resize, pad and normalise as their authors do inside
    the model (all but SDMatte): each image (or crop) goes to ``model_fn`` at its own size, and
    ``resolution`` and ``resize`` are not used.
    ``on_chunk([(output index, image index, crop box (x0, y0, x1, y1)), ...])`` is called right
    after each model call with its items, in the call's batch order (for what a model keeps on
    the side of its alpha, e.g. SIM's semantic classes).
    ``detail``: how an alpha computed below its image's (or crop's) size comes back to it (see
    :mod:`.detail`): "off" bilinear as the authors, "guided" the guided filter in the uncertain
    band, "refine" that and the model again on full-resolution tiles there (``prompt_kinds``: the
    forms the model takes, for the tiles' prompts; ``on_tile(done, total)`` after each tile). An
    alpha not computed below its image's size is the same whatever ``detail`` says.
    ``detail_size(height, width) -> (h, w)``: with ``at_input_size`` and a ``detail`` other than
    "off", the size a family resolves an input of (height, width) at (its own resize, or a cap on
    its memory); a larger image (or crop) goes to the model at that size (area-averaged) and its
    alpha comes back as ``detail`` says.
    """
    images = _check_images(images)
    b, height, width, _ = images.shape
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 64 or resolution % 64:
        raise PromptError(f"resolution {resolution} must be a multiple of 64 (e.g. 512, 768, 1024)")
    if resize not in RESIZE_MODES:
        raise PromptError(f"resize {resize!r} must be one of {', '.join(RESIZE_MODES)}")
    if focus not in FOCUS_MODES:
        raise PromptError(f"focus {focus!r} must be one of {', '.join(FOCUS_MODES)}")
    margin = float(margin)
    if not (math.isfinite(margin) and margin >= 0):
        raise PromptError(f"margin {margin} must be 0 or more (a fraction of the prompt's size)")
    detail = full_detail.check_detail(detail)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise PromptError(f"chunk_size {chunk_size} must be at least 1")

    items, n_out = pair_prompts(b, prompts, bool(merge_objects))
    if isinstance(transparent, (bool, int)) or (isinstance(transparent, torch.Tensor) and transparent.dim() == 0):
        flags = [bool(transparent)] * len(items)
    else:
        flags = [bool(v) for v in transparent]
        if len(flags) != len(items):
            raise PromptError(
                f"{len(flags)} transparency flags for {len(items)} images to matte; give one flag or one per item"
            )

    device = images.device
    jobs = []  # (item index, image index, prompt in crop pixels, crop box, working size, kind)
    for k, (bi, prompt, _) in enumerate(items):
        validate_for_image(prompt, height, width)
        p = prompt.scaled_to(height, width)
        if focus == "crop":
            box = crop_box(p, height, width, margin, square=(resize == "stretch" and not at_input_size))
        else:
            box = (0, 0, width, height)
        x0, y0, x1, y1 = box
        if box != (0, 0, width, height):
            p = p.cropped(x0, y0, x1, y1)
        ws = (y1 - y0, x1 - x0) if at_input_size else working_size(y1 - y0, x1 - x0, resolution, resize)
        if at_input_size and detail != "off" and detail_size is not None:
            capped = tuple(int(v) for v in detail_size(y1 - y0, x1 - x0))
            ws = capped if full_detail.is_upsampled(capped, ws) else ws
        jobs.append((k, bi, p, box, ws, model_kind(p.kind)))

    groups: dict = {}
    for job in jobs:
        groups.setdefault((job[4], job[5]), []).append(job)
    chunks = []
    for group in groups.values():
        for i in range(0, len(group), chunk_size):
            chunks.append(group[i: i + chunk_size])
    chunks.sort(key=lambda c: c[0][0])  # keep the items' order as far as grouping allows

    out = torch.zeros(n_out, height, width, dtype=torch.float32, device=device)
    total = len(jobs)
    done = 0
    for chunk in chunks:
        ws, kind = chunk[0][4], chunk[0][5]
        ims, maps, coords = [], [], []
        for _, bi, p, (x0, y0, x1, y1), _, _ in chunk:
            crop = images[bi, y0:y1, x0:x1, :].permute(2, 0, 1)[None].to(torch.float32)
            if at_input_size and tuple(ws) != (y1 - y0, x1 - x0):  # a capped family: averaged, not aliased
                ims.append(F.interpolate(crop, size=tuple(ws), mode="bilinear", align_corners=False, antialias=True))
            else:
                ims.append(_resize(crop, ws, "bilinear"))
            pmap, c = render_prompt(p, ws, (y1 - y0, x1 - x0), device=device)
            maps.append(pmap)
            coords.append(c)
        batch = torch.cat(ims).clamp_(0.0, 1.0)
        trans = torch.tensor([flags[job[0]] for job in chunk], dtype=torch.bool, device=device)
        with torch.no_grad():
            alpha = model_fn(batch, torch.stack(maps), torch.stack(coords), kind, trans)
        alpha = _as_alpha(alpha, len(chunk), ws).to(device=device, dtype=torch.float32)
        if on_chunk is not None:
            on_chunk([(items[job[0]][2], job[1], job[3]) for job in chunk])
        for j, (k, bi, p, (x0, y0, x1, y1), _, _) in enumerate(chunk):
            if detail == "off" or not full_detail.is_upsampled(ws, (y1 - y0, x1 - x0)):
                a = _resize(alpha[j: j + 1], (y1 - y0, x1 - x0), "bilinear")[0, 0].clamp(0.0, 1.0)
            else:
                crop = images[bi, y0:y1, x0:x1, :]
                a, band = full_detail.guided_upsample(alpha[j: j + 1], crop.permute(2, 0, 1)[None].to(torch.float32))
                a = a[0, 0].clamp(0.0, 1.0)
                if detail == "refine" and band is not None:
                    a = _refine(model_fn, crop, a, band[0, 0], flags[k], resolution, resize, at_input_size,
                                detail_size, prompt_kinds, on_tile)
            o = items[k][2]
            region = out[o, y0:y1, x0:x1]
            out[o, y0:y1, x0:x1] = torch.maximum(region, a) if merge_objects else a
        done += len(chunk)
        if on_item is not None:
            on_item(done, total)
    return out


def _refine(model_fn, crop, alpha, band, transparent, resolution, resize, at_input_size, detail_size, prompt_kinds,
            on_tile) -> torch.Tensor:
    """``detail.refine`` of one item's alpha: tiles of the model's working size, each matted by this
    pipeline at that size (so as the authors run it, no resizing)."""
    if at_input_size:
        tile = min(int(v) for v in detail_size(1 << 16, 1 << 16)) if detail_size is not None else max(crop.shape[:2])
    else:
        tile = resolution

    def matte_tile(tile_image, prompt):
        return matte(model_fn, tile_image, prompt, resolution=resolution, resize=resize, transparent=transparent,
                     at_input_size=at_input_size)[0]

    return full_detail.refine(matte_tile, crop, alpha, band, tile=tile, prompt_kinds=prompt_kinds, on_tile=on_tile)


def _as_alpha(alpha, n: int, ws) -> torch.Tensor:
    if not isinstance(alpha, torch.Tensor):
        raise TypeError(f"the matting model returned {type(alpha).__name__}, not a tensor")
    if alpha.dim() == 3:
        alpha = alpha[:, None]
    if tuple(alpha.shape) != (n, 1, ws[0], ws[1]):
        raise ValueError(
            f"the matting model returned alpha of shape {tuple(alpha.shape)}, expected {(n, 1, ws[0], ws[1])}"
        )
    return alpha
