"""Prompt maps and coordinates: parity with the reference pipeline (golden fixtures, scipy)."""

import importlib

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

CASE_DIRS = ("sdmatte_tiny", "litesdmatte_tiny", "litesdmatte_tiny_nomid")


@pytest.fixture(scope="module")
def M(pack):
    return importlib.import_module(pack.__name__ + ".matting")


@pytest.fixture(scope="module")
def golden_maps(golden_dir):
    return dict(np.load(golden_dir / "prompt_maps.npz"))


def _scipy_point_map(points, h, w, sigma):
    """The reference's rule: a delta per click, gaussian_filter (reflect, 4 sigma), peak 1, max."""
    out = np.zeros((h, w), np.float64)
    for x, y in points:
        d = np.zeros((h, w), np.float64)
        d[y, x] = 1.0
        g = ndi.gaussian_filter(d, sigma=sigma)
        out = np.maximum(out, g / g.max())
    return out


# ------------------------------------------------------------------ golden 1024


@pytest.mark.golden
def test_points_map_and_coords_match_the_reference_at_1024(M, golden_maps):
    xy = golden_maps["points.xy"]
    p = M.Prompt.from_points([tuple(v) for v in xy.tolist()], source_size=(1024, 1024))
    pmap, coords = M.render_prompt(p, (1024, 1024), (1024, 1024))
    assert pmap.shape == (1, 1024, 1024) and pmap.dtype == torch.float32
    ref = golden_maps["points.map"].astype(np.float32)
    assert np.abs(pmap[0].numpy() - ref).max() <= 1e-3
    assert coords.shape == (20,) and coords.dtype == torch.float32
    np.testing.assert_array_equal(coords.numpy(), golden_maps["points.coords"])


@pytest.mark.golden
def test_box_map_and_coords_match_the_reference_at_1024(M, golden_maps):
    p = M.Prompt.from_box(*golden_maps["box.xyxy"].tolist(), source_size=(1024, 1024))
    pmap, coords = M.render_prompt(p, (1024, 1024))
    np.testing.assert_array_equal(pmap[0].numpy(), golden_maps["box.map"].astype(np.float32))
    np.testing.assert_array_equal(coords.numpy(), golden_maps["box.coords"])


@pytest.mark.golden
def test_mask_map_and_coords_match_the_reference_at_1024(M, golden_maps):
    p = M.Prompt.from_mask(torch.from_numpy(golden_maps["mask.map"].astype(np.float32)))
    pmap, coords = M.render_prompt(p, (1024, 1024))
    np.testing.assert_array_equal(pmap[0].numpy(), golden_maps["mask.map"].astype(np.float32))
    np.testing.assert_array_equal(coords.numpy(), golden_maps["mask.coords"])


# ------------------------------------------------------------- golden cases.npz


@pytest.mark.golden
@pytest.mark.parametrize("folder", CASE_DIRS)
def test_every_golden_case_prompt_is_reproduced(M, golden_dir, folder):
    c = np.load(golden_dir / folder / "cases.npz")
    size = c["image"].shape[-2:]
    for flag in ("trans0", "trans1"):
        # points: the case stores normalised clicks; x * W is the click in pixels
        co = c[f"point_mask.{flag}.coords"]
        pts = [(co[2 * i] * size[1], co[2 * i + 1] * size[0]) for i in range(10) if co[2 * i] or co[2 * i + 1]]
        pmap, coords = M.render_prompt(M.Prompt.from_points(pts, source_size=size), size)
        assert np.abs(pmap[0].numpy() - c[f"point_mask.{flag}.map"]).max() <= 1e-3
        np.testing.assert_allclose(coords.numpy(), co, rtol=0, atol=1e-7)

        co = c[f"bbox_mask.{flag}.coords"]
        box = (co[0] * size[1], co[1] * size[0], co[2] * size[1], co[3] * size[0])
        pmap, coords = M.render_prompt(M.Prompt.from_box(*box, source_size=size), size)
        np.testing.assert_array_equal(pmap[0].numpy(), c[f"bbox_mask.{flag}.map"])
        np.testing.assert_allclose(coords.numpy(), co, rtol=0, atol=1e-7)

        pmap, coords = M.render_prompt(M.Prompt.from_mask(c[f"mask.{flag}.map"]), size)
        np.testing.assert_array_equal(pmap[0].numpy(), c[f"mask.{flag}.map"])
        np.testing.assert_array_equal(coords.numpy(), c[f"mask.{flag}.coords"])

        pmap, coords = M.render_prompt(M.Prompt.from_trimap(c[f"trimap.{flag}.map"]), size)
        np.testing.assert_array_equal(pmap[0].numpy(), c[f"trimap.{flag}.map"])
        np.testing.assert_array_equal(coords.numpy(), c[f"trimap.{flag}.coords"])

        pmap, coords = M.render_prompt(M.Prompt.auto(), size)
        np.testing.assert_array_equal(pmap[0].numpy(), c[f"auto_mask.{flag}.map"])
        np.testing.assert_array_equal(coords.numpy(), c[f"auto_mask.{flag}.coords"])

    for i in range(2):
        co = c["batch2.coords"][i]
        box = (co[0] * size[1], co[1] * size[0], co[2] * size[1], co[3] * size[0])
        pmap, coords = M.render_prompt(M.Prompt.from_box(*box, source_size=size), size)
        np.testing.assert_array_equal(pmap[0].numpy(), c["batch2.map"][i])
        np.testing.assert_allclose(coords.numpy(), co, rtol=0, atol=1e-7)


# ------------------------------------------------------------ scipy equality


@pytest.mark.parametrize(
    "h, w, points",
    [
        (96, 64, [(0, 0), (63, 95), (30, 50)]),  # corners: reflection on both sides
        (16, 24, [(3, 2), (20, 13)]),  # kernel radius wider than the image: repeated reflection
        (200, 300, [(150, 100)]),
    ],
)
def test_point_map_equals_scipy_gaussian_filter_with_reflect(M, h, w, points):
    p = M.Prompt.from_points(points, source_size=(h, w))
    sigma = 35.0 * max(h, w) / 1024
    pmap, _ = M.render_prompt(p, (h, w), sigma=sigma)
    ref = _scipy_point_map(points, h, w, sigma)
    assert np.abs(pmap[0].numpy() - ref).max() <= 1e-5
    # an analytic (non-reflected) Gaussian would not match near the border
    assert pmap.max() == pytest.approx(1.0)


def test_point_sigma_scales_with_the_longer_working_side(M):
    p = M.Prompt.from_points([(256, 128)], source_size=(256, 512))
    pmap, coords = M.render_prompt(p, (256, 512))
    sigma = 35.0 * 512 / 1024
    ref = _scipy_point_map([(256, 128)], 256, 512, sigma)
    assert np.abs(pmap[0].numpy() - ref).max() <= 1e-5
    np.testing.assert_allclose(coords[:2].numpy(), [0.5, 0.5])


def test_points_scale_from_source_to_working_size(M):
    # a click in a 2000×1000 image lands at the same relative place of the working map
    p = M.Prompt.from_points([(1500, 250)], source_size=(1000, 2000))
    pmap, coords = M.render_prompt(p, (512, 512))
    y, x = np.unravel_index(int(pmap[0].argmax()), (512, 512))
    assert (x, y) == (384, 128)
    np.testing.assert_allclose(coords.numpy()[:2], [0.75, 0.25])
    assert coords.numpy()[2:].tolist() == [0.0] * 18


def test_ten_points_at_1024(M):
    p = M.Prompt.from_points([(90 * i + 60, 80 * i + 100) for i in range(10)], source_size=(1024, 1024))
    pmap, coords = M.render_prompt(p, (1024, 1024))
    assert coords.shape == (20,) and (coords > 0).all()
    # every click (away from the border, where reflection moves the peak) is a peak of the map
    for i in range(10):
        assert float(pmap[0, 80 * i + 100, 90 * i + 60]) == pytest.approx(1.0)


def test_box_scaled_to_a_smaller_working_size(M):
    p = M.Prompt.from_box(100, 50, 300, 150, source_size=(400, 400))
    pmap, coords = M.render_prompt(p, (128, 128))
    ys, xs = torch.nonzero(pmap[0], as_tuple=True)
    assert (int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1) == (32, 96, 16, 48)
    np.testing.assert_allclose(coords.numpy(), [0.25, 0.125, 0.75, 0.375])


def test_mask_coords_use_last_pixel_indices_and_nearest_resize(M):
    m = torch.zeros(64, 64)
    m[10:20, 30:41] = 1
    pmap, coords = M.render_prompt(M.Prompt.from_mask(m), (64, 64))
    np.testing.assert_allclose(coords.numpy(), [30 / 64, 10 / 64, 40 / 64, 19 / 64])
    pmap, coords = M.render_prompt(M.Prompt.from_mask(m), (128, 128))
    assert set(pmap.unique().tolist()) == {0.0, 1.0}
    np.testing.assert_allclose(coords.numpy(), [60 / 128, 20 / 128, 81 / 128, 39 / 128])


def test_trimap_and_auto_maps(M):
    t = torch.zeros(32, 32)
    t[8:24, 8:24] = 0.5
    t[12:20, 12:20] = 1.0
    pmap, coords = M.render_prompt(M.Prompt.from_trimap(t), (64, 64))
    assert set(pmap.unique().tolist()) == {0.0, 0.5, 1.0}
    assert coords.tolist() == [0.0, 0.0, 1.0, 1.0]
    pmap, coords = M.render_prompt(M.Prompt.auto(), (40, 48))
    assert pmap.shape == (1, 40, 48) and bool((pmap == 1).all())
    assert coords.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_model_kind_strings(M):
    render = importlib.import_module(M.__name__ + ".render")
    assert [render.model_kind(k) for k in ("point", "box", "mask", "trimap", "auto")] == [
        "point", "box", "mask", "trimap", "auto",
    ]
    with pytest.raises(M.PromptError):
        render.model_kind("scribble")
