"""Matte metrics (matting/metrics.py), the evaluation command line (matting/evaluate.py) and the
benchmark runner (the prompt rules in matting/benchmark.py, the command in batch/benchmark.py), without
ComfyUI.

The golden values in tests/golden/metrics/cases.npz were computed by running the SDMatte authors'
own functions (utils/evaluate.py, the per-image steps of evaluation.py, the test transforms of
data/dataset.py) with their pinned numpy 1.24.1 and scikit-image 0.24.0 and OpenCV 4.5.5:
tools/make_metrics_golden.py."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics"
NAMES = ("MSE", "MAD", "SAD", "Grad", "Conn")


@pytest.fixture(scope="module")
def M(pack):
    import importlib

    return importlib.import_module(f"{pack.__name__}.matting.metrics")


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN / "cases.npz")


def case_names():
    return [str(n) for n in np.load(GOLDEN / "cases.npz")["cases"]]


# ------------------------------------------------------------------ parity with the authors' code


@pytest.mark.parametrize("case", case_names())
def test_metrics_match_the_authors_functions(M, golden, case):
    trimap = golden[f"{case}.trimap"] if f"{case}.trimap" in golden.files else None
    ours = M.matte_metrics(golden[f"{case}.pred"], golden[f"{case}.gt"], trimap)
    theirs = dict(zip(NAMES, golden[f"{case}.values"]))
    for name in NAMES:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-6, abs=1e-12), (case, name, ours[name], theirs[name])


def test_golden_cases_cover_the_rules_that_decide_values(golden):
    """The cases exercise: trimaps, resized predictions, Conn's background-as-component rule, its
    tie-breaks, levels exactly on a threshold, and a case where everything is zero."""
    cases = set(case_names())
    assert {"identical", "background_tie", "twin_components", "threshold_levels", "large_foreground"} <= cases
    assert sum(f"{c}.trimap" in golden.files for c in cases) >= 4
    assert sum(f"{c}.pred_resized" in golden.files for c in cases) >= 4
    assert np.all(golden["identical.values"] == 0)
    assert golden["twin_components.values"][4] > 0 and golden["background_tie.values"][4] > 0
    meta = json.loads(str(golden["meta"]))
    assert meta["numpy"] == "1.24.1" and meta["scikit-image"] == "0.24.0"


def test_resize_is_opencvs_bilinear(M, golden):
    """Predictions of another size: within one float32 step (1.5e-5 of a grey level) of cv2.resize
    INTER_LINEAR (IPP), and identical on these cases."""
    resized = [c for c in case_names() if f"{c}.pred_resized" in golden.files]
    assert resized
    for case in resized:
        ours = M.resize_bilinear(golden[f"{case}.pred"], golden[f"{case}.gt"].shape)
        cv = golden[f"{case}.pred_resized"]
        assert ours.shape == cv.shape and ours.dtype == np.float32
        assert np.abs(ours - cv).max() <= 1.6e-5, case
        assert np.mean(ours == cv) >= 0.99, case


def test_gradient_is_their_2d_gaussian_derivative_convolution(M):
    """Our banded separable filter equals scipy.ndimage.convolve with the 9×9 kernel built as their
    gaussgradient builds it, on any image size (even smaller than the kernel): bit for bit where the
    image varies; on flat ground theirs leaves the rounding residue of the antisymmetric kernel
    (~1e-16) where ours gives 0."""
    import scipy.ndimage as ndi

    sigma, eps = 1.4, 1e-2
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * eps))))
    assert half == 4
    u = np.arange(-half, half + 1)
    gauss = np.exp(-(u ** 2) / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    dgauss = -u * gauss / sigma ** 2
    hx = np.array([[gauss[i] * dgauss[j] for j in range(len(u))] for i in range(len(u))])
    hx = hx / np.sqrt(np.sum(np.abs(hx) * np.abs(hx)))
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (3, 200), (130, 7), (150, 97)]:
        im = (rng.integers(0, 256, (h, w)).astype(np.float32) / np.float32(255.0)).astype(np.float32)
        ref = np.sqrt(ndi.convolve(im, hx, mode="nearest") ** 2 + ndi.convolve(im, hx.T, mode="nearest") ** 2)
        ours = M.gradient_magnitude(im)
        assert np.allclose(ours, ref, rtol=0, atol=1e-12), (h, w)
        if h * w > 100:
            assert np.mean(ours == ref) > 0.999, (h, w)


def _levels_by_definition(pred01, gt01):
    """Conn's level map written as their loop reads: the whole image labelled at every threshold,
    the background counted as label 0, the first largest label kept."""
    import scipy.ndimage as ndi

    steps = np.arange(0, 1 + 0.1, 0.1)
    level = np.full(pred01.shape, -1, dtype=np.float32)
    for i in range(1, len(steps)):
        t = np.float32(steps[i])
        labels, _ = ndi.label((pred01 >= t) & (gt01 >= t))
        omega = labels == np.argmax(np.bincount(labels.ravel()))
        level[(level == -1) & ~omega] = steps[i - 1]
    level[level == -1] = 1
    return level


def test_connectivity_levels_follow_the_definition_on_random_mattes(M):
    """The shortcut level map (labels only above half the image, inside the bounding box) equals the
    literal per-threshold loop, including ties, on 400 small random mattes."""
    rng = np.random.default_rng(3)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        fg = rng.random((h, w)) < rng.uniform(0.2, 0.97)
        pred = np.where(fg, rng.integers(0, 256, (h, w)), rng.integers(0, 60, (h, w)))
        gt = np.where(fg | (rng.random((h, w)) < 0.1), 255 - rng.integers(0, 90, (h, w)), 0)
        p01 = (pred.astype(np.float32) / np.float32(255)).astype(np.float32)
        g01 = (gt.astype(np.float32) / np.float32(255)).astype(np.float32)
        assert np.array_equal(M.connectivity_levels(p01, g01), _levels_by_definition(p01, g01))


# ------------------------------------------------------------------ what a user checks


def test_identical_mattes_score_zero_and_a_shift_costs_its_area(M):
    gt = np.zeros((60, 80), np.float32)
    gt[10:50, 20:60] = 255
    zero = M.matte_metrics(gt, gt)
    assert all(zero[k] == 0 for k in NAMES)
    shifted = np.roll(gt, 3, axis=1)  # 3 columns of 40 rows move: 2 × 3 × 40 pixels off by 1
    m = M.matte_metrics(shifted, gt)
    assert m["SAD"] == pytest.approx(240 / 1000)
    assert m["MAD"] == pytest.approx(240 / (60 * 80) * 1000)
    assert m["MSE"] == pytest.approx(240 / (60 * 80) * 1000)
    assert m["Grad"] > 0
    # Conn, as the authors count components (the background among them): the outside of a subject
    # under half the image is the "largest component" at every threshold, so a crisp subject's
    # shift costs nothing; the Adobe definition (largest foreground component) would give 0.24
    assert m["Conn"] == 0
    big = np.zeros((60, 80), np.float32)
    big[5:55, 5:75] = 255  # more than half the image: its own component wins
    assert M.matte_metrics(np.roll(big, 3, axis=1), big)["Conn"] == pytest.approx(2 * 3 * 50 / 1000)
    # with a trimap, only the unknown (128) pixels count: the band around the left and right edges
    trimap = np.where(gt > 0, 255, 0).astype(np.uint8)
    trimap[:, 15:25] = 128
    t = M.matte_metrics(shifted, gt, trimap)
    assert t["SAD"] == pytest.approx(3 * 40 / 1000)  # the left edge's error only
    assert t["MAD"] == pytest.approx(3 * 40 / (60 * 10) * 1000)


def test_torch_and_uint8_inputs_give_the_same_numbers(M, golden):
    import torch

    pred, gt = golden["noisy.pred"], golden["noisy.gt"]
    a = M.matte_metrics(pred, gt)
    b = M.matte_metrics(torch.from_numpy(pred)[None], torch.from_numpy(gt.astype(np.uint8)))
    assert a == b


def test_mean_is_the_mean_of_images_and_lines_have_the_authors_format(M):
    rows = [dict(zip(NAMES, [1.0, 2.0, 3.0, 4.0, 5.0])), dict(zip(NAMES, [3.0, 4.0, 5.0, 6.0, 7.0]))]
    assert M.mean_metrics(rows) == dict(zip(NAMES, [2.0, 3.0, 4.0, 5.0, 6.0]))
    assert M.format_line("a", rows[0]) == "a: MSE: 1.00  MAD: 2.00  SAD: 3.00 Grad: 4.00 Conn: 5.00"
    table = M.format_table(["a", "b"], rows).splitlines()
    assert table[0].split() == ["image", *NAMES]
    assert table[-1].split() == ["mean", "2.00", "3.00", "4.00", "5.00", "6.00"]


def test_grey_levels(M):
    a = np.array([[0.0, 0.5, 1.0, 100 / 255, 0.9999]], np.float32)
    assert M.grey_levels(a).tolist() == [[0, 128, 255, 100, 255]]
    assert M.grey_levels(a, rounding="floor").tolist() == [[0, 127, 255, 100, 254]]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.grey_levels(a * 255)


def test_bad_inputs_are_clear_errors(M):
    gt = np.zeros((20, 30), np.float32)
    gt[5:15, 5:25] = 255
    trimap = np.where(gt > 0, 255, 0).astype(np.uint8)
    trimap[4:16, 4:8] = 127  # a trimap whose unknown grey is 127, not 128
    with pytest.raises(ValueError, match=r"no unknown pixels.*128.*0, 127, 255"):
        M.matte_metrics(gt, gt, trimap)
    with pytest.raises(ValueError, match=r"trimap is 30×10 but the ground truth is 30×20"):
        M.matte_metrics(gt, gt, trimap[:10])
    with pytest.raises(ValueError, match=r"prediction has values from 0 to 1000.*0\.\.255"):
        M.matte_metrics(gt * 1000 / 255, gt)
    bad = gt.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="ground truth contains NaN"):
        M.matte_metrics(gt, bad)
    with pytest.raises(ValueError, match="shape"):
        M.matte_metrics(np.zeros((2, 20, 30)), gt)


def test_five_metrics_of_a_2048_image_take_well_under_a_second(M):
    import time

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:2048, 0:2048]
    gt = (np.clip((700 - np.hypot(yy - 1000, xx - 1100)) / 40, 0, 1) * 255).round().astype(np.float32)
    pred = np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).round().astype(np.float32)
    M.matte_metrics(pred[:256, :256], gt[:256, :256])  # warm up
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        M.matte_metrics(pred, gt)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, f"{best:.2f} s"


# ------------------------------------------------------------------ reading files


@pytest.mark.parametrize("name", sorted(p.name for p in (GOLDEN / "files").iterdir()))
def test_files_are_read_as_cv2_imread_grey(pack, golden, name):
    import importlib

    evaluate = importlib.import_module(f"{pack.__name__}.matting.evaluate")
    ours = evaluate.read_grey(GOLDEN / "files" / name)
    assert np.array_equal(ours, golden[f"read.{name}"].astype(np.float32))


def test_rgba_files_are_refused(pack, tmp_path):
    import importlib

    evaluate = importlib.import_module(f"{pack.__name__}.matting.evaluate")
    Image.new("RGBA", (8, 8)).save(tmp_path / "cut.png")
    with pytest.raises(ValueError, match="alpha channel.*grey PNG"):
        evaluate.read_grey(tmp_path / "cut.png")


# ------------------------------------------------------------------ the evaluation command


def _soft_disc(h, w, cy, cx, r, edge):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip((r - np.hypot(yy - cy, xx - cx)) / edge + 0.5, 0, 1)


def _write_grey(path, levels):
    Image.fromarray(np.asarray(levels).round().clip(0, 255).astype(np.uint8), "L").save(path)


@pytest.fixture()
def mini_set(tmp_path):
    """3 ground truths (one .jpg-named stem pair), predictions (one of another size), trimaps."""
    rng = np.random.default_rng(1)
    gt_dir, pred_dir, tri_dir, img_dir = (tmp_path / n for n in ("gt", "pred", "trimap", "images"))
    for d in (gt_dir, pred_dir, tri_dir, img_dir):
        d.mkdir()
    for i, (h, w) in enumerate([(72, 96), (80, 64), (64, 64)]):
        a = _soft_disc(h, w, h / 2, w / 2, min(h, w) / 3, 6)
        _write_grey(gt_dir / f"im{i}.png", a * 255)
        pred = np.clip(a + rng.normal(0, 0.05, a.shape) * (a > 0), 0, 1) * 255
        if i == 1:  # a prediction of another size: resized to the ground truth
            pred = np.asarray(Image.fromarray(pred.astype(np.uint8)).resize((48, 60), Image.BILINEAR))
        _write_grey(pred_dir / f"im{i}.png", pred)
        tri = np.where(a >= 1, 255, 0)
        tri[(a > 0) & (a < 1)] = 128
        _write_grey(tri_dir / f"im{i}.png", tri)
        rgb = np.dstack([a * 200 + 30, a * 100 + 60, 255 - a * 200]).astype(np.uint8)
        Image.fromarray(rgb).save(img_dir / f"im{i}.jpg", quality=95)
    return tmp_path


def _run(pack, module, *args, timeout=600):
    holder = str(Path(pack.__file__).parent.parent)  # the folder that holds the pack
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", f"{pack.__name__}.{module}", *map(str, args)],
        cwd=holder, capture_output=True, text=True, timeout=timeout, env=env,
    )


def test_evaluate_command_prints_the_authors_lines_and_writes_csv(pack, M, mini_set):
    import importlib

    evaluate = importlib.import_module(f"{pack.__name__}.matting.evaluate")
    out_csv = mini_set / "out" / "metrics.csv"
    done = _run(pack, "matting.evaluate", mini_set / "pred", mini_set / "gt", "--csv", out_csv)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["im0", "im1", "im2", "mean of 3"]
    expected = [M.matte_metrics(evaluate.read_grey(mini_set / "pred" / f"im{i}.png"),
                                evaluate.read_grey(mini_set / "gt" / f"im{i}.png")) for i in range(3)]
    assert lines[1] == M.format_line("im1", expected[1])
    assert lines[3] == M.format_line("mean of 3", M.mean_metrics(expected))
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["im0", "im1", "im2", "mean"]
    for r, e in zip(rows, expected):
        assert all(float(r[k]) == e[k] for k in NAMES)
    assert float(rows[3]["SAD"]) == pytest.approx(np.mean([e["SAD"] for e in expected]))
    # the progress goes to stderr, the numbers to stdout; ComfyUI is not needed
    assert "comfy" not in done.stderr.lower()


def _main(module, capsys, *args):
    """Run a command's main() in this process (the same code as ``python -m``, without a new interpreter)."""
    code = module.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def E(pack):
    import importlib

    return importlib.import_module(f"{pack.__name__}.matting.evaluate")


def test_evaluate_with_trimaps_measures_the_unknown_region(E, mini_set, capsys):
    code, tri_out, err = _main(E, capsys, mini_set / "pred", mini_set / "gt", "--trimap-dir", mini_set / "trimap", "--quiet")
    assert code == 0, err
    code, all_out, err = _main(E, capsys, mini_set / "pred", mini_set / "gt", "--quiet")
    mad_tri = float(tri_out.splitlines()[0].split("MAD:")[1].split()[0])
    mad_all = float(all_out.splitlines()[0].split("MAD:")[1].split()[0])
    assert mad_tri > mad_all > 0  # the same error over fewer pixels


def test_evaluate_names_missing_predictions_and_trimaps(E, mini_set, capsys):
    (mini_set / "trimap" / "im0.png").unlink()
    code, _, err = _main(E, capsys, mini_set / "pred", mini_set / "gt", "--trimap-dir", mini_set / "trimap")
    assert code == 2 and "1 of 3 ground truths have no trimap" in err and "im0" in err
    (mini_set / "pred" / "im2.png").unlink()
    code, _, err = _main(E, capsys, mini_set / "pred", mini_set / "gt")
    assert code == 2
    assert "1 of 3 ground truths have no prediction" in err and "im2" in err


def test_evaluate_names_the_file_it_cannot_measure(E, mini_set, capsys):
    Image.new("RGBA", (96, 72)).save(mini_set / "pred" / "im0.png")
    code, _, err = _main(E, capsys, mini_set / "pred", mini_set / "gt", "--quiet")
    assert code == 2 and err.startswith("error: im0: ") and "alpha channel" in err


# ------------------------------------------------------------------ the benchmark runner


@pytest.fixture(scope="module")
def B(pack):
    import importlib

    return importlib.import_module(f"{pack.__name__}.matting.benchmark")


@pytest.fixture(scope="module")
def command(pack):
    """The benchmark command (batch/benchmark.py), on the batch command's machinery."""
    import importlib

    return importlib.import_module(f"{pack.__name__}.batch.benchmark")


@pytest.mark.parametrize("case", range(6))
def test_prompts_are_derived_as_the_authors_test_transforms(B, golden, case):
    k = f"prompt{case}"
    res = int(golden["prompt_resolution"])
    alpha = B.working_alpha(golden[f"{k}.gt"].astype(np.float32), res)
    seed = int(golden[f"{k}.seed"])
    x1, y1, x2, y2 = B.box_from_alpha(alpha)
    assert np.array_equal(np.array([x1, y1, x2, y2]) / res, golden[f"{k}.bbox_coords"])
    box_map = np.zeros((res, res), np.uint8)
    box_map[y1:y2, x1:x2] = 1
    assert np.array_equal(box_map, golden[f"{k}.bbox_mask"])
    clicks = np.array(B.points_from_alpha(alpha, seed)) / res
    assert np.array_equal(clicks.ravel(), golden[f"{k}.point_coords"])
    assert np.array_equal(B.trimap_from_alpha(alpha, seed) * 2, golden[f"{k}.trimap2"].astype(np.float32))


def test_derived_prompts_render_as_the_reference_maps(B, golden):
    """The box prompt renders to their bbox map and coordinates at the working size."""
    import importlib

    render = importlib.import_module(B.__name__.rsplit(".", 1)[0] + ".render")
    res = int(golden["prompt_resolution"])
    alpha = B.working_alpha(golden["prompt0.gt"].astype(np.float32), res)
    pmap, coords = render.render_prompt(B.derive_prompt("box", alpha, 0), (res, res))
    assert np.array_equal(pmap[0].numpy(), golden["prompt0.bbox_mask"].astype(np.float32))
    assert np.allclose(coords.numpy(), golden["prompt0.bbox_coords"], atol=1e-7)


@pytest.mark.golden
@pytest.mark.slow
def test_benchmark_runs_measures_and_resumes(pack, golden_dir, mini_set):
    ckpt = golden_dir / "sdmatte_tiny" / "model.safetensors"
    out = mini_set / "bench"
    args = ["--model", ckpt, "--images", mini_set / "images", "--gt", mini_set / "gt", "--prompt", "box",
            "--out", out, "--resolution", 128, "--device", "cpu"]
    first = _run(pack, "batch.benchmark", *args)
    assert first.returncode == 0, first.stderr
    assert "3 images: 0 predictions already in" in first.stderr
    preds = sorted(out.glob("*.png"))
    assert [p.name for p in preds] == ["im0.png", "im1.png", "im2.png"]
    for p in preds:  # grey PNGs of the ground truths' sizes
        with Image.open(p) as im, Image.open(mini_set / "gt" / p.name) as gt:
            assert im.mode == "L" and im.size == gt.size
    lines = first.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["im0", "im1", "im2", "mean of 3"]
    with open(out / "metrics.csv") as f:
        assert [r["name"] for r in csv.DictReader(f)] == ["im0", "im1", "im2", "mean"]
    # the numbers are those of the evaluation command on the written predictions
    again = _run(pack, "matting.evaluate", out, mini_set / "gt", "--quiet")
    assert again.stdout == first.stdout

    # resume: nothing is predicted again, files untouched, same table
    mtimes = {p.name: p.stat().st_mtime_ns for p in preds}
    second = _run(pack, "batch.benchmark", *args)
    assert second.returncode == 0, second.stderr
    assert "3 predictions already in" in second.stderr and "0 to predict" in second.stderr
    assert "loaded" not in second.stderr  # the model is not even loaded
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes
    assert second.stdout == first.stdout

    # an interrupted run: one prediction missing, one cut short; only those two are redone
    (out / "im1.png").unlink()
    (out / "im2.png").write_bytes((out / "im0.png").read_bytes()[:40])
    third = _run(pack, "batch.benchmark", *args)
    assert third.returncode == 0, third.stderr
    assert "1 predictions already in" in third.stderr and "2 to predict" in third.stderr
    assert (out / "im0.png").stat().st_mtime_ns == mtimes["im0.png"]
    assert third.stdout == first.stdout  # the same model, prompts and seed give the same predictions

    # other settings into the same folder are refused, not mixed
    other = _run(pack, "batch.benchmark", *[a if a != "box" else "mask" for a in args])
    assert other.returncode == 2
    assert "other settings" in other.stderr and "prompt: 'box' -> 'mask'" in other.stderr


@pytest.mark.golden
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["point", "trimap", "mask", "auto"])
def test_benchmark_other_prompt_kinds(command, golden_dir, mini_set, kind, capsys):
    ckpt = golden_dir / "sdmatte_tiny" / "model.safetensors"
    code, out, err = _main(command, capsys, "--model", ckpt, "--images", mini_set / "images", "--gt", mini_set / "gt",
                           "--prompt", kind, "--out", mini_set / "bench", "--resolution", 64, "--device", "cpu",
                           "--quiet")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("mean of 3: MSE: ")
    assert json.loads((mini_set / "bench" / "benchmark.json").read_text())["prompt"] == kind


@pytest.mark.golden
def test_benchmark_refuses_a_set_it_cannot_prompt(command, golden_dir, mini_set, capsys):
    """Points need 10 pixels above 0.8: an almost empty ground truth stops the run before the model loads."""
    _write_grey(mini_set / "gt" / "im2.png", np.zeros((64, 64)))
    ckpt = golden_dir / "sdmatte_tiny" / "model.safetensors"
    code, _, err = _main(command, capsys, "--model", ckpt, "--images", mini_set / "images", "--gt", mini_set / "gt",
                         "--prompt", "point", "--out", mini_set / "bench", "--resolution", 64, "--device", "cpu")
    assert code == 2
    assert "im2: only 0 pixels" in err and "needs 10" in err
    assert "loaded" not in err and not list((mini_set / "bench").glob("*.png"))


def test_benchmark_checks_its_arguments(command, mini_set, capsys):
    code, _, err = _main(command, capsys, "--model", mini_set / "nope.safetensors", "--images", mini_set / "images",
                         "--gt", mini_set / "gt", "--prompt", "box")
    assert code == 2 and "does not exist" in err
    code, _, err = _main(command, capsys, "--model", mini_set / "gt" / "im0.png", "--images", mini_set / "images",
                         "--gt", mini_set / "gt", "--prompt", "box", "--resolution", 100)
    assert code == 2 and "multiple of 64" in err
