"""Synthetic clips with motion we control, and a colour-key "family" that mattes them exactly.

The clip: a textured subject with a soft, hair-like alpha (a disk with a 3 px ramp and thin strands
of alpha 0.25-0.6 reaching out from it) composited over a textured background. Its path: slow to
the right, faster, a pause, half out of the right edge and back, then a scene cut to another
background where the subject stands elsewhere and a second, similar object (a "distractor") stands
where the subject was before the cut. Subject pixels have blue 1 and both backgrounds blue 0, so
a frame's blue channel is the true alpha: the colour-key double reads it back exactly.

Everything is made from a fixed seed: the same clip every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HEIGHT, WIDTH = 112, 192
RADIUS = 20  # the subject's core
STRANDS = 10  # px the hair reaches beyond the core


@dataclass
class Clip:
    frames: torch.Tensor  # (N, H, W, 3) float32 in [0, 1]
    alpha: torch.Tensor  # (N, H, W) the subject's true alpha (the distractor excluded)
    centres: list  # (x, y) of the subject per frame
    cut: int  # first frame of the second shot
    partly_out: list  # frames where part of the subject lies outside the frame

    def visible_fraction(self, t: int) -> float:
        return float(self.alpha[t].sum()) / float(subject_alpha(HEIGHT, WIDTH, self.centres[0], full=True).sum())


def path(n: int, leave: bool = False) -> tuple[list, int]:
    """Centres (x, y) for n >= 36 frames and the cut frame: slow (3 px/frame), fast (8 px/frame),
    a pause, half out of the right edge (10 px/frame) and back, a cut to a new place. ``leave``:
    the subject goes on out of the frame instead of coming back, and there is no cut."""
    pts, x, y = [], 40.0, 56.0
    for t in range(n):
        if t < 8:
            x += 3
        elif t < 14:
            x += 8
            y += 1
        elif t < 18:
            pass  # pause
        elif t < 26:
            x += 10  # towards the right edge: half out at frame 25
        elif leave:
            x += 10  # on out of the frame
        elif t < 32:
            x -= 10  # back in
        pts.append((x, y))
    if leave:
        return pts, n
    cut = 32
    for t in range(cut, n):  # second shot: the subject on the left (far from the distractor), moving right
        pts[t] = (28.0 + (t - cut), 60.0)
    return pts, cut


def _texture(h: int, w: int, seed: int, lo: float, hi: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, h // 8 + 1, w // 8 + 1, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    fine = torch.rand(h, w, generator=g) * 0.3
    return lo + (hi - lo) * (0.7 * smooth + fine).clamp(0, 1)


def subject_alpha(h: int, w: int, centre, full: bool = False) -> torch.Tensor:
    """The subject's alpha at ``centre`` (x, y); ``full`` draws it on a canvas big enough to hold it
    whole (for its full area)."""
    if full:
        h = w = 2 * (RADIUS + STRANDS) + 4
        cx = cy = h / 2
    else:
        cx, cy = centre
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    dx, dy = xs - cx, ys - cy
    r = torch.sqrt(dx * dx + dy * dy)
    core = (RADIUS + 1.5 - r).clamp(0, 3) / 3  # a 3 px soft edge
    angle = torch.atan2(dy, dx)
    strand = (torch.cos(angle * 23) > 0.93).float() * (0.25 + 0.35 * (0.5 + 0.5 * torch.sin(angle * 7)))
    reach = ((r > RADIUS) & (r < RADIUS + STRANDS)).float() * (1 - (r - RADIUS) / STRANDS)
    return torch.maximum(core, strand * reach).clamp(0, 1)


def make_clip(n: int = 40, seed: int = 3, leave: bool = False) -> Clip:
    centres, cut = path(n, leave)
    shot_a = torch.stack([_texture(HEIGHT, WIDTH, seed, 0.05, 0.45), _texture(HEIGHT, WIDTH, seed + 1, 0.55, 0.95),
                          torch.zeros(HEIGHT, WIDTH)], dim=-1)
    shot_b = torch.stack([_texture(HEIGHT, WIDTH, seed + 2, 0.55, 0.95), _texture(HEIGHT, WIDTH, seed + 3, 0.05, 0.45),
                          torch.zeros(HEIGHT, WIDTH)], dim=-1)
    subject = torch.stack([_texture(HEIGHT, WIDTH, seed + 4, 0.3, 0.7), _texture(HEIGHT, WIDTH, seed + 5, 0.3, 0.7),
                           torch.ones(HEIGHT, WIDTH)], dim=-1)
    frames = torch.empty(n, HEIGHT, WIDTH, 3)
    alphas = torch.empty(n, HEIGHT, WIDTH)
    partly_out = []
    full = float(subject_alpha(HEIGHT, WIDTH, None, full=True).sum())
    for t, centre in enumerate(centres):
        a = subject_alpha(HEIGHT, WIDTH, centre)
        background = shot_a if t < cut else shot_b
        frame = background * (1 - a[..., None]) + subject * a[..., None]
        if t >= cut:  # the distractor stands where the subject was on the last frame of shot A
            d = subject_alpha(HEIGHT, WIDTH, centres[cut - 1])
            d = torch.where(a > 0, torch.zeros_like(d), d)
            frame = frame * (1 - d[..., None]) + subject * d[..., None]
        frames[t], alphas[t] = frame, a
        if float(a.sum()) < full - 1:
            partly_out.append(t)
    return Clip(frames=frames.clamp(0, 1), alpha=alphas, centres=centres, cut=cut, partly_out=partly_out)


def soft_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two alphas: sum of minima over sum of maxima (1 when equal)."""
    union = float(torch.maximum(a, b).sum())
    return 1.0 if union == 0 else float(torch.minimum(a, b).sum()) / union


class ColourKeyMatting(torch.nn.Module):
    """A test double of a matting family: the alpha is the image's blue channel (exact on the
    synthetic clips), kept where the prompt says the subject is. A matting model refines around
    its prompt, so the double keeps what lies within ``REACH`` px of a mask, trimap or box prompt
    (clicks and automatic: everywhere)."""

    family = "colourkey"
    prompt_kinds = ("point", "box", "mask", "trimap", "auto")
    works_at_input_size = True
    REACH = 8

    def __init__(self, prompt_kinds=None):
        super().__init__()
        if prompt_kinds is not None:
            self.prompt_kinds = tuple(prompt_kinds)
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # a weight for ModelPatcher
        self.calls = []  # (kind, prompt region (H, W) bool) per image matted

    @property
    def dtype(self):
        return torch.float32

    def inference_memory_bytes(self, batch, height, width):
        return batch * height * width * 16

    def forward(self, image, prompt_map, coords, kind, transparent, caption=None):
        key = image[:, 2:3].clamp(0, 1)
        if kind in ("mask", "trimap", "box"):
            size = 2 * self.REACH + 1
            region = torch.nn.functional.max_pool2d((prompt_map > 0).float(), size, stride=1, padding=self.REACH)
        else:
            region = torch.ones_like(key)
        for r in region:
            self.calls.append((kind, r[0] > 0))
        return key * region
