"""Benchmark: full-resolution mattes (issue 23): detail error of the upsampling paths, and every
family's peak memory and time on large photos.

    PYTHONPATH=tests .venv/bin/python bench/bench_detail.py [--sizes 2048x1536,4000x3000,6000x4000] [--skip-families]
                                           [--skip-error] [--golden DIR]

Two tables, from one run:

1. **Detail error** on the synthetic scenes of ``tools/make_detail_cases.py`` (exact alpha) at each
   size. The tiny test checkpoints have random weights, so their alphas say nothing about detail;
   what is measured instead is the path an alpha takes from a working size back to the photo. The
   model is a stand-in that answers any call with the scene's exact alpha at the size it is shown
   (area-averaged to the working size for the whole image, the exact pixels for a full-resolution
   tile) blurred by a Gaussian of sigma 1 px at that size: a model that is right but resolves one
   working pixel. It never reads the prompt. Per family geometry (SDMatte: 1024x1024 stretched;
   MAM, SEMat: longer side 1024; AIM: shorter side 1080; SIM: longer side 1536) the stand-in
   runs through ``matting.pipeline.matte`` with detail "guided" and "refine"; "bilinear" is its
   working-size alpha resized as detail "off" resizes it. SAD and Grad (``matting/metrics.py``,
   8-bit as the authors) over the uncertain band: pixels whose true alpha is neither 0 nor 255 in
   8 bits, and 8 px around them.
2. **Families** (tiny golden checkpoints, random weights, the released code paths) on the scene's
   image at each size, detail "off" and "guided", one child process per run: peak RSS of the
   whole process (image, weights and all) and seconds for ``matte``. SIM with detail "off" at a
   size whose working memory would not fit is what the Matting node refuses before computing:
   marked "refused" with the estimate.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _bench_helpers():
    """bench/_pack.py, by its path: this script also runs loaded by file from the tests, where bench/
    is not the script's folder on the import path."""
    if "_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_pack", Path(__file__).with_name("_pack.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["_pack"] = module
    return sys.modules["_pack"]


_pack = _bench_helpers()

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
FAMILIES = ("sdmatte", "litesdmatte", "mam", "semat", "sim", "aim")
PACK = "PromptMatte"


def import_pack():
    """The pack as package ``PromptMatte`` (bench/_pack.py)."""
    return _pack.import_pack(PACK)


def cases_module():
    spec = importlib.util.spec_from_file_location("make_detail_cases", REPO / "tools" / "make_detail_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


# ---------------------------------------------------------------------------------------- error


class StandIn:
    """A model exact up to its working resolution (see the module's docstring)."""

    def __init__(self, image, alpha, tile_boxes):
        import torch

        self.image = image  # (1, 3, H, W) float
        self.alpha = alpha  # (1, 1, H, W) float
        self.tiles = tile_boxes
        self.low = None
        self.calls = 0
        self.blur = self._kernel(torch)

    @staticmethod
    def _kernel(torch):
        x = torch.arange(-3, 4, dtype=torch.float32)
        g = torch.exp(-0.5 * x * x)
        return g / g.sum()

    def _blurred(self, a):
        import torch.nn.functional as F

        k = self.blur
        a = F.conv2d(F.pad(a, (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7))
        return F.conv2d(F.pad(a, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1))

    def __call__(self, image, prompt_map, coords, kind, transparent):
        import torch
        import torch.nn.functional as F

        self.calls += 1
        size = tuple(image.shape[-2:])
        if self.calls == 1:  # the whole image, at the working size
            self.low = self._blurred(F.interpolate(self.alpha, size=size, mode="area"))
            return self.low
        for x0, y0, x1, y1 in self.tiles:  # a full-resolution tile: find which
            if (y1 - y0, x1 - x0) == size and torch.equal(image[0, :, :8, :8], self.image[0, :, y0:y0 + 8, x0:x0 + 8]):
                return self._blurred(self.alpha[..., y0:y1, x0:x1])
        raise RuntimeError(f"the stand-in was called with an image of size {size} that is no tile")


GEOMETRY = {  # family row -> its working-size rule (as the families' detail_size; "sdmatte": the pipeline's)
    "SDMatte, SDMatte*, LiteSDMatte (1024x1024)": "sdmatte",
    "MAM, SEMat (longer side 1024)": "sam",
    "AIM (shorter side 1080)": "aim",
    "SIM (longer side 1536)": "sim",
}


def detail_size_for(rule):
    mam = importlib.import_module(f"{PACK}.models.sam.transforms")
    aim = importlib.import_module(f"{PACK}.models.aim.hybrid")
    sim = importlib.import_module(f"{PACK}.models.sim.model")
    if rule == "sam":
        return lambda h, w: (h, w) if max(h, w) <= 1024 else mam.get_preprocess_shape(h, w, 1024)
    if rule == "aim":
        return aim.working_size
    if rule == "sim":
        def sim_size(h, w):
            if max(h, w) <= sim.DETAIL_MAX_SIDE:
                return (h, w)
            s = sim.DETAIL_MAX_SIDE / max(h, w)
            return (int(h * s + 0.5), int(w * s + 0.5))
        return sim_size
    return None


def band_scores(pred, truth8, grad_truth, region, metrics):
    import numpy as np

    p = metrics.grey_levels(pred).astype(np.float32) / 255
    sad = float(np.abs(p - truth8)[region].sum() / 1000)
    grad = float(((metrics.gradient_magnitude(p) - grad_truth) ** 2)[region].sum() / 1000)
    return sad, grad


def error_table(sizes) -> list[dict]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    import_pack()
    matting = importlib.import_module(f"{PACK}.matting")
    pipeline = importlib.import_module(f"{PACK}.matting.pipeline")
    detail = importlib.import_module(f"{PACK}.matting.detail")
    metrics = importlib.import_module(f"{PACK}.matting.metrics")
    cases = cases_module()
    rows = []
    for height, width in sizes:
        image_u8, truth = cases.cached_scene(height, width)
        image = torch.from_numpy(image_u8)[None].float() / 255  # (1, H, W, 3)
        chw = image.permute(0, 3, 1, 2).contiguous()
        alpha = torch.from_numpy(truth)[None, None]
        truth8 = metrics.grey_levels(truth).astype(np.float32) / 255
        unknown = torch.from_numpy((truth8 > 0) & (truth8 < 1))
        region = (F.max_pool2d(unknown[None, None].float(), 17, stride=1, padding=8)[0, 0] > 0).numpy()
        grad_truth = metrics.gradient_magnitude(truth8)
        prompt = matting.Prompt.auto()
        for row, rule in GEOMETRY.items():
            size_rule = detail_size_for(rule)
            at_input = size_rule is not None
            tile = 1024 if not at_input else min(size_rule(1 << 16, 1 << 16))
            boxes = detail.tile_grid(height, width, tile, max(1, int(tile * detail.TILE_OVERLAP)))
            result = {"size": f"{width}x{height}", "family": row}
            for mode in ("guided", "refine"):
                model = StandIn(chw, alpha, boxes)
                start = time.perf_counter()
                out = pipeline.matte(model, image, prompt, resolution=1024, detail=mode, at_input_size=at_input,
                                     detail_size=size_rule)[0]
                result[f"{mode} s"] = time.perf_counter() - start
                result[mode] = band_scores(out.numpy(), truth8, grad_truth, region, metrics)
                result[f"{mode} tiles"] = model.calls - 1
                if mode == "guided":
                    low = model.low
                    result["working"] = "x".join(str(v) for v in reversed(low.shape[-2:]))
                    plain = detail.bilinear(low, (height, width))[0, 0].clamp(0, 1)
                    result["bilinear"] = band_scores(plain.numpy(), truth8, grad_truth, region, metrics)
            rows.append(result)
            print(json.dumps(result), flush=True)
    return rows


# ------------------------------------------------------------------------------------ families


def tiny_files(folder: Path, golden: Path) -> dict[str, Path]:
    """family -> its tiny checkpoint (companions beside it, where the loader looks)."""
    # the golden writers import each other by name: the command puts tests/ on PYTHONPATH
    if importlib.util.find_spec("tiny_families") is None:
        raise SystemExit(f"the family benchmarks need the test helpers: run with PYTHONPATH={TESTS} (or --skip-families)")
    tiny_families = importlib.import_module("tiny_families")
    models = folder / "models"
    names = tiny_families.install(models)
    files = {family: models / "matting" / name for family, name in names.items()}
    sam = models / "sams" / "sam_vit_b_01ec64.pth"
    (models / "matting" / sam.name).write_bytes(sam.read_bytes())  # MAM finds SAM beside its file
    files["sdmatte"] = golden / "sdmatte_tiny" / "model.safetensors"
    files["litesdmatte"] = golden / "litesdmatte_tiny" / "model.safetensors"
    return files


def family_run(family: str, checkpoint: str, height: int, width: int, detail_mode: str) -> dict:
    """One child's run: load, matte the scene at (height, width), report peak RSS and time."""
    import ctypes

    import torch

    import_pack()
    models = importlib.import_module(f"{PACK}.models")
    pipeline = importlib.import_module(f"{PACK}.matting.pipeline")
    alpha_prompt = importlib.import_module(f"{PACK}.matting.alpha_prompt")
    cases = cases_module()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    image_u8, truth = cases.cached_scene(height, width)
    folder = Path(checkpoint).parent

    def find(companion):
        for name in companion.file_names:
            if (folder / name).is_file():
                return folder / name
        return None

    net = models.load_matting_model(checkpoint, find_companion=find)
    image = torch.from_numpy(image_u8)[None].float() / 255
    del image_u8
    kind = alpha_prompt.alpha_prompt_kind(net.prompt_kinds)
    prompt = alpha_prompt.prompt_from_alpha(torch.from_numpy(truth), kind)
    del truth
    at_input = bool(getattr(net, "works_at_input_size", False))
    detail_size = getattr(net, "detail_size", None) if detail_mode != "off" else None
    if at_input and detail_size is None:
        need = net.inference_memory_bytes(1, height, width)
        if need > 16e9:
            return {"refused": need}

    def model_fn(im, prompt_map, coords, k, transparent):
        with torch.inference_mode():
            return net(im, prompt_map, coords, k, transparent).float()

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    start = time.perf_counter()
    alpha = pipeline.matte(model_fn, image, prompt, resolution=1024, detail=detail_mode, at_input_size=at_input,
                           detail_size=detail_size, prompt_kinds=tuple(net.prompt_kinds))
    seconds = time.perf_counter() - start
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return {"seconds": seconds, "peak_rss": peak, "mean_alpha": float(alpha.mean())}


def family_table(sizes, golden: Path, modes=("off", "guided")) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        files = tiny_files(Path(scratch), golden)
        for height, width in sizes:
            cases_module().cached_scene(height, width)  # drawn once, outside the measured children
            for family in FAMILIES:
                for mode in modes:
                    done = subprocess.run(
                        [sys.executable, __file__, "--child", family, str(files[family]), str(height), str(width), mode],
                        capture_output=True, text=True)
                    if done.returncode != 0:
                        raise SystemExit(done.stderr[-3000:])
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    result.update(size=f"{width}x{height}", family=family, detail=mode)
                    rows.append(result)
                    print(json.dumps(result), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048x1536,4000x3000,6000x4000")
    parser.add_argument("--error-sizes", default="4000x3000,6000x4000")
    parser.add_argument("--skip-families", action="store_true")
    parser.add_argument("--skip-error", action="store_true")
    parser.add_argument("--details", default="off,guided", help="detail options of the families' runs")
    parser.add_argument("--golden", type=Path, default=Path(os.environ.get("PROMPTMATTE_GOLDEN", REPO.parent / "shared" / "golden")))
    parser.add_argument("--child", nargs=5, metavar=("FAMILY", "CHECKPOINT", "HEIGHT", "WIDTH", "DETAIL"))
    args = parser.parse_args()
    if args.child:
        family, checkpoint, height, width, mode = args.child
        print(json.dumps(family_run(family, checkpoint, int(height), int(width), mode)))
        return
    if not args.skip_error:
        rows = error_table([parse_size(s) for s in args.error_sizes.split(",")])
        print("\n| size | family (working size) | working | bilinear SAD / Grad | guided SAD / Grad | refine SAD / Grad | tiles | guided s | refine s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['size']} | {r['family']} | {r['working']} | {r['bilinear'][0]:.1f} / {r['bilinear'][1]:.1f} | "
                  f"{r['guided'][0]:.1f} / {r['guided'][1]:.1f} | {r['refine'][0]:.1f} / {r['refine'][1]:.1f} | "
                  f"{r['refine tiles']} | {r['guided s']:.1f} | {r['refine s']:.1f} |")
    if not args.skip_families:
        rows = family_table([parse_size(s) for s in args.sizes.split(",")], args.golden, args.details.split(","))
        print("\n| size | family | detail | peak RSS GB | s |")
        print("|---|---|---|---|---|")
        for r in rows:
            if "refused" in r:
                print(f"| {r['size']} | {r['family']} | {r['detail']} | refused (needs {r['refused'] / 1e9:.0f} GB) | |")
            else:
                print(f"| {r['size']} | {r['family']} | {r['detail']} | {r['peak_rss'] / 1e9:.2f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
