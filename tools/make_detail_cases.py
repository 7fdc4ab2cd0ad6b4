"""Synthetic full-resolution matting cases with an exact alpha, for the detail benchmark and tests.

    python tools/make_detail_cases.py [--size 6000x4000] [--seed 0] [--out DIR]

A scene is drawn at the size asked (width x height), with everything measured in pixels of that
size where detail matters and in fractions of the image elsewhere:

- a subject: an ellipse with a wobbling outline, opaque inside, a one-pixel antialiased edge;
- a veil beside it: a semi-transparent region (alpha 0.25-0.65, varying smoothly) with a soft edge;
- strands (hair): curved arcs leaving the subject's outline, 1 to 3 px wide with a soft 1.5 px
  falloff on both sides and an opacity that fades towards the tip; their count and length grow
  with the image, so each scene has about as much edge per area at any size;
- a textured background (smooth colour blobs plus fine stripes and pixel noise, so an edge-aware
  filter has wrong edges to follow too) and a shaded foreground colour, composited with that
  alpha: ``image = alpha * foreground + (1 - alpha) * background``, then 8-bit as a photo is.

``scene(height, width, seed)`` returns (image uint8 (H, W, 3), alpha float32 (H, W)), exact (the
alpha is what was composited). ``downscaled(image, alpha, height, width)`` is the same scene at a
lower resolution (area averaging of both: a camera with fewer pixels). ``cached_scene`` keeps a
scene under ``~/.cache/promptmatte/detail/`` keyed by this file's hash, so tests and the benchmark
draw it once per machine. Plain numpy + torch; never imported by the pack.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CACHE = Path.home() / ".cache" / "promptmatte" / "detail"
FALLOFF = 1.5  # px over which a strand's edge fades out


def _smooth_noise(generator: torch.Generator, height: int, width: int, channels: int, cells: int) -> torch.Tensor:
    """(channels, H, W) smooth noise in about [-1, 1]: a random grid of ``cells`` along the longer side, bicubic."""
    gh = max(2, round(cells * height / max(height, width)))
    gw = max(2, round(cells * width / max(height, width)))
    grid = torch.rand(1, channels, gh, gw, generator=generator) * 2 - 1
    return F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)[0].clamp_(-1.5, 1.5)


def _background(generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    base = torch.tensor([0.35, 0.45, 0.40]).view(3, 1, 1)
    blobs = 0.18 * _smooth_noise(generator, height, width, 3, 12) + 0.08 * _smooth_noise(generator, height, width, 3, 60)
    # Fine stripes at a slant (about 9 px period at any size) and pixel noise: texture at the strands' scale.
    yy = torch.arange(height, dtype=torch.float32).view(height, 1)
    xx = torch.arange(width, dtype=torch.float32).view(1, width)
    stripes = 0.06 * torch.sin((xx * 0.55 + yy * 0.35) * (2 * math.pi / 9.0))
    grain = 0.03 * (torch.rand(1, height, width, generator=generator) * 2 - 1)
    return (base + blobs + stripes + grain).clamp_(0, 1)


def _foreground(generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    base = torch.tensor([0.85, 0.62, 0.30]).view(3, 1, 1)  # warm hair colour, far from the background's
    shade = 0.12 * _smooth_noise(generator, height, width, 1, 8) + 0.05 * _smooth_noise(generator, height, width, 3, 40)
    return (base + shade).clamp_(0, 1)


def _ellipse(height: int, width: int, cy: float, cx: float, ry: float, rx: float, wobble) -> torch.Tensor:
    """(H, W) antialiased ellipse coverage; the radius varies with the angle by ``wobble(theta)``."""
    yy = torch.arange(height, dtype=torch.float32).view(height, 1) + 0.5
    xx = torch.arange(width, dtype=torch.float32).view(1, width) + 0.5
    dy, dx = (yy - cy) / ry, (xx - cx) / rx
    theta = torch.atan2(dy, dx)
    radius = torch.sqrt(dy * dy + dx * dx)
    scale = wobble(theta)
    # Signed distance in pixels, approximately (the ellipse is gentle): (r / scale - 1) * mean radius.
    distance = (radius / scale - 1.0) * (0.5 * (rx + ry))
    return (0.5 - distance).clamp_(0, 1)


def _strands(generator: np.random.Generator, height: int, width: int, cy, cx, ry, rx, wobble_np) -> torch.Tensor:
    """(H, W) coverage of the hair strands, by splatting points sampled every 0.25 px along each arc."""
    alpha = torch.zeros(height * width, dtype=torch.float32)
    side = min(height, width)
    count = int(60 + 260 * (height * width) / (4000 * 6000))
    reach = int(math.ceil(1.5 + FALLOFF))  # half window in px: widest half-width plus the falloff
    offsets = np.arange(-reach, reach + 1)
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    for _ in range(count):
        theta = generator.uniform(-math.pi, math.pi)
        r = wobble_np(theta)
        start = np.array([cy + ry * r * math.sin(theta) - 0.02 * side * math.sin(theta),
                          cx + rx * r * math.cos(theta) - 0.02 * side * math.cos(theta)])
        heading = theta + generator.normal(0, 0.35)
        length = generator.uniform(0.06, 0.22) * side
        bend = generator.normal(0, 2.5) / length  # radians per px: a few tenths to a couple of radians in all
        width_px = generator.uniform(1.0, 3.0)
        peak = generator.uniform(0.7, 1.0)
        steps = int(length / 0.25)
        t = np.arange(steps) * 0.25
        angle = heading + bend * t
        # Position: the integral of the heading, dy/dt = sin(angle), dx/dt = cos(angle) (a circular arc).
        if abs(bend) > 1e-9:
            py = start[0] - (np.cos(angle) - math.cos(heading)) / bend
            px = start[1] + (np.sin(angle) - math.sin(heading)) / bend
        else:
            py = start[0] + math.sin(heading) * t
            px = start[1] + math.cos(heading) * t
        fade = peak * (1.0 - 0.6 * t / length)
        iy = np.floor(py).astype(np.int64)[:, None] + oy[None, :]
        ix = np.floor(px).astype(np.int64)[:, None] + ox[None, :]
        distance = np.hypot(iy + 0.5 - py[:, None], ix + 0.5 - px[:, None])
        value = fade[:, None] * np.clip((width_px / 2 + FALLOFF / 2 - distance) / FALLOFF, 0, 1)
        keep = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width) & (value > 0)
        index = torch.from_numpy(iy[keep] * width + ix[keep])
        alpha.scatter_reduce_(0, index, torch.from_numpy(value[keep].astype(np.float32)), "amax")
    return alpha.view(height, width)


def scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (H, W, 3), alpha float32 (H, W) in [0, 1]): the scene drawn at (height, width)."""
    torch_generator = torch.Generator().manual_seed(seed)
    numpy_generator = np.random.default_rng(seed)
    cy, cx = 0.52 * height, 0.45 * width
    ry, rx = 0.26 * height, 0.22 * width
    phases = numpy_generator.uniform(0, 2 * math.pi, 3)

    def wobble(theta):
        return 1.0 + 0.05 * torch.sin(3 * theta + float(phases[0])) + 0.03 * torch.sin(7 * theta + float(phases[1]))

    def wobble_np(theta):
        return 1.0 + 0.05 * math.sin(3 * theta + phases[0]) + 0.03 * math.sin(7 * theta + phases[1])

    body = _ellipse(height, width, cy, cx, ry, rx, wobble)
    veil_shape = _ellipse(height, width, 0.45 * height, 0.74 * width, 0.2 * height, 0.12 * width,
                          lambda theta: 1.0 + 0.04 * torch.sin(5 * theta + float(phases[2])))
    # Soften the veil's edge over about 0.4 % of the image (a chiffon edge, not a cut).
    soft = max(1, int(0.004 * max(height, width)))
    veil_shape = F.avg_pool2d(veil_shape[None, None], 2 * soft + 1, stride=1, padding=soft, count_include_pad=False)[0, 0]
    veil = veil_shape * (0.45 + 0.2 * _smooth_noise(torch_generator, height, width, 1, 10)[0]).clamp_(0.25, 0.65)
    strands = _strands(numpy_generator, height, width, cy, cx, ry, rx, wobble_np)
    alpha = torch.maximum(torch.maximum(body, veil), strands).clamp_(0, 1)
    del body, veil, veil_shape, strands
    background = _background(torch_generator, height, width)
    foreground = _foreground(torch_generator, height, width)
    image = foreground.mul_(alpha).add_(background.mul_(1 - alpha))
    del background
    image = (image.clamp_(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous()
    return image.numpy(), alpha.numpy()


def downscaled(image: np.ndarray, alpha: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The scene at (height, width): area averaging of the image (8-bit again) and of the alpha."""
    im = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    small = F.interpolate(im, size=(height, width), mode="area")[0].permute(1, 2, 0)
    a = F.interpolate(torch.from_numpy(alpha)[None, None], size=(height, width), mode="area")[0, 0]
    return (small + 0.5).clamp_(0, 255).to(torch.uint8).numpy(), a.clamp_(0, 1).numpy()


def generator_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def cached_scene(height: int, width: int, seed: int = 0, cache: Path = CACHE) -> tuple[np.ndarray, np.ndarray]:
    """``scene(height, width, seed)``, drawn once per machine and kept under ``cache``."""
    folder = Path(cache) / generator_hash()
    stem = folder / f"{width}x{height}_seed{seed}"
    image_file, alpha_file = stem.with_suffix(".image.npy"), stem.with_suffix(".alpha.npy")
    if image_file.is_file() and alpha_file.is_file():
        return np.load(image_file), np.load(alpha_file)
    image, alpha = scene(height, width, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for path, array in ((image_file, image), (alpha_file, alpha)):
        partial = path.with_name(path.name + ".partial.npy")
        np.save(partial, array)
        partial.replace(path)
    return image, alpha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6000x4000", help="width x height")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for image.png and alpha.png (else the cache)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.out is None:
        cached_scene(height, width, args.seed)
        print(f"cached under {CACHE / generator_hash()}")
        return
    from PIL import Image

    image, alpha = scene(height, width, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out / "image.png")
    Image.fromarray((alpha * 65535 + 0.5).astype(np.uint16)).save(args.out / "alpha.png")
    print(f"wrote {args.out / 'image.png'} and {args.out / 'alpha.png'} (16-bit)")


if __name__ == "__main__":
    main()
