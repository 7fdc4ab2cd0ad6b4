"""Full-resolution detail (matting/detail.py): guided upsampling and tiled refinement as drivers of
the one-image pipeline, the alpha -> prompt conversion, and no change at or below the working size.

The detail error is measured on a synthetic scene with an exact alpha (tools/make_detail_cases.py)
through a stand-in model that returns the scene's alpha at the size it is shown (see
bench/bench_detail.py): random tiny weights would say nothing about detail.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def M(pack):
    names = ("pipeline", "detail", "alpha_prompt", "metrics", "prompt", "errors")
    return {name: importlib.import_module(f"{pack.__name__}.matting.{name}") for name in names}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cases():
    return _load(REPO / "tools" / "make_detail_cases.py", "make_detail_cases")


@pytest.fixture(scope="module")
def bench():
    return _load(REPO / "bench" / "bench_detail.py", "bench_detail")


@pytest.fixture(scope="module")
def scene(cases):
    height, width = 1200, 1600
    image, alpha = cases.cached_scene(height, width)
    return torch.from_numpy(image)[None].float() / 255, torch.from_numpy(alpha)


def image_model(image, prompt_map, coords, kind, transparent):
    """A deterministic model: an alpha from the image's colours and the prompt (no weights)."""
    return (image.mean(dim=1, keepdim=True) * 0.8 + 0.2 * prompt_map).clamp(0, 1)


# ------------------------------------------------------------------------------ alpha -> prompt


def test_prompt_from_alpha_gives_each_family_its_form(M):
    ap = M["alpha_prompt"]
    alpha = torch.zeros(60, 80)
    alpha[20:40, 30:50] = 1.0
    alpha[18:20, 30:50] = 0.5  # a soft edge above
    mask = ap.prompt_from_alpha(alpha, "mask")
    assert mask.kind == "mask" and torch.equal(mask.mask, (alpha > 0.5).float())
    box = ap.prompt_from_alpha(alpha, "box", margin=3)
    assert box.kind == "box" and box.box == (27.0, 17.0, 53.0, 43.0) and box.source_size == (60, 80)
    trimap = ap.prompt_from_alpha(alpha, "trimap", margin=2, sure_foreground=0.98).mask
    assert set(trimap.unique().tolist()) == {0.0, 0.5, 1.0}
    assert trimap[30, 40] == 1.0 and trimap[0, 0] == 0.0
    assert trimap[19, 40] == 0.5 and trimap[21, 40] == 0.5  # the soft edge and 2 px inside are unknown
    assert ap.prompt_from_alpha(alpha, "auto").kind == "auto"
    assert [ap.alpha_prompt_kind(kinds) for kinds in (("point", "box", "mask", "trimap", "auto"), ("point", "box", "mask"),
                                                     ("box", "mask", "auto"), ("trimap",), ("auto",))] == \
        ["mask", "mask", "mask", "trimap", "auto"]
    assert ap.prompt_from_alpha(torch.full((10, 10), 0.2), "box") is None  # no subject for a box
    assert not ap.subject_present(torch.full((10, 10), 0.2), "box") and ap.subject_present(torch.full((10, 10), 0.2), "trimap")


# ------------------------------------------------------------------ no change at the working size


@pytest.mark.parametrize("size", [(200, 300), (512, 512), (500, 512)])
def test_at_or_below_the_working_size_every_detail_option_is_bit_identical(M, size):
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(1, *size, 3, generator=generator)
    prompt = M["prompt"].Prompt.from_box(20, 30, 150, 180, source_size=size)
    off = M["pipeline"].matte(image_model, image, prompt, resolution=512, detail="off")
    for mode in ("guided", "refine"):
        assert torch.equal(M["pipeline"].matte(image_model, image, prompt, resolution=512, detail=mode), off)
    # A family at input size below its cap is given the image itself, whatever detail says.
    off = M["pipeline"].matte(image_model, image, prompt, at_input_size=True, detail="off")
    capped = M["pipeline"].matte(image_model, image, prompt, at_input_size=True, detail="guided",
                                 detail_size=lambda h, w: (h, w) if max(h, w) <= 512 else (h // 2, w // 2))
    assert torch.equal(capped, off)


# ------------------------------------------------------------------------- guided and refined


def test_a_family_at_input_size_above_its_cap_gets_the_capped_image_and_a_guided_alpha(M):
    generator = torch.Generator().manual_seed(4)
    image = F.interpolate(torch.rand(1, 3, 9, 12, generator=generator), size=(600, 800), mode="bilinear",
                          align_corners=False).permute(0, 2, 3, 1).contiguous()
    seen = []

    def family(im, pm, co, kind, trans):
        seen.append(tuple(im.shape[-2:]))
        return image_model(im, pm, co, kind, trans)

    def cap(h, w):  # as a family's detail_size: the longer side at most 400
        return (h, w) if max(h, w) <= 400 else (round(h * 400 / max(h, w)), round(w * 400 / max(h, w)))

    off = M["pipeline"].matte(family, image, None, at_input_size=True, detail="off", detail_size=cap)
    guided = M["pipeline"].matte(family, image, None, at_input_size=True, detail="guided", detail_size=cap)
    assert seen == [(600, 800), (300, 400)]  # "off" is the authors' call, at the image's size
    assert tuple(guided.shape) == (1, 600, 800) and not torch.equal(off, guided)
    refined = M["pipeline"].matte(family, image, None, at_input_size=True, detail="refine", detail_size=cap)
    assert seen[2] == (300, 400) and set(seen[3:]) == {(400, 400)}  # then full-resolution tiles of the cap's side
    assert tuple(refined.shape) == (1, 600, 800) and not torch.equal(refined, guided)


def _band_scores(bench, M, pred, truth):
    metrics = M["metrics"]
    truth8 = metrics.grey_levels(truth.numpy()).astype(np.float32) / 255
    unknown = torch.from_numpy((truth8 > 0) & (truth8 < 1))
    region = (F.max_pool2d(unknown[None, None].float(), 17, stride=1, padding=8)[0, 0] > 0).numpy()
    return bench.band_scores(pred.numpy(), truth8, metrics.gradient_magnitude(truth8), region, metrics)


def test_guided_then_refine_improve_sad_and_grad_in_the_uncertain_band(M, bench, scene):
    image, truth = scene
    height, width = truth.shape
    detail = M["detail"]
    chw = image.permute(0, 3, 1, 2).contiguous()
    boxes = detail.tile_grid(height, width, 512, max(1, int(512 * detail.TILE_OVERLAP)))
    ticks = []
    results = {}
    for mode in ("guided", "refine"):
        model = bench.StandIn(chw, truth[None, None], boxes)
        results[mode] = M["pipeline"].matte(model, image, M["prompt"].Prompt.auto(), resolution=512, detail=mode,
                                            on_tile=lambda done, total: ticks.append((done, total)))[0]
        if mode == "guided":
            bilinear = detail.bilinear(model.low, (height, width))[0, 0].clamp(0, 1)
            assert model.calls == 1
        else:
            assert model.calls > 1  # the model ran again on tiles
    assert ticks == [(k, len(ticks)) for k in range(1, len(ticks) + 1)] and len(ticks) == model.calls - 1
    plain_sad, plain_grad = _band_scores(bench, M, bilinear, truth)
    guided_sad, guided_grad = _band_scores(bench, M, results["guided"], truth)
    refine_sad, refine_grad = _band_scores(bench, M, results["refine"], truth)
    assert guided_sad < plain_sad and guided_grad < 0.9 * plain_grad
    assert refine_sad < 0.8 * guided_sad and refine_grad < 0.8 * guided_grad


def test_opaque_and_empty_regions_stay_exact(M, scene):
    image, truth = scene
    height, width = truth.shape
    low = F.interpolate(truth[None, None], size=(300, 400), mode="area")
    chw = image.permute(0, 3, 1, 2).contiguous()
    guided, band = M["detail"].guided_upsample(low, chw)
    plain = M["detail"].bilinear(low, (height, width))
    assert band.any() and not band.all()
    assert torch.equal(guided[~band], plain[~band])
    certain = ~band[0, 0]
    assert set(guided[0, 0][certain].unique().tolist()) <= {0.0, 1.0}


def test_refinement_stops_between_tiles(M, scene):
    image, truth = scene

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done == 2:
            raise Cancelled

    calls = []

    def model(im, pm, co, kind, trans):
        calls.append(tuple(im.shape))
        return F.interpolate(truth[None, None], size=tuple(im.shape[-2:]), mode="area")

    with pytest.raises(Cancelled):
        M["pipeline"].matte(model, image, None, resolution=512, detail="refine", on_tile=cancel)
    assert 1 <= len(calls) <= 3  # the whole image, then at most the two tiles before the stop


def test_unknown_detail_option_is_refused(M):
    with pytest.raises(M["errors"].PromptError, match="detail 'sharp' must be one of off, guided, refine"):
        M["pipeline"].matte(image_model, torch.rand(1, 64, 64, 3), None, detail="sharp")
