"""Matte Metrics (nodes/metrics.py) in a real ComfyUI: in this process (the executor's call path) and
through a real server (Load Image -> Convert Image to Mask -> Matte Metrics -> Preview Any / Preview
Image)."""

from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics"
NAMES = ("MSE", "MAD", "SAD", "Grad", "Conn")


def rect(h=60, w=80, rows=slice(10, 50), cols=slice(20, 60)) -> torch.Tensor:
    m = torch.zeros(1, h, w)
    m[0, rows, cols] = 1.0
    return m


def parse(table: str) -> dict:
    """{row name: {metric: value}} from the node's table (header line, column line, rows, mean)."""
    lines = table.strip().splitlines()
    cols = lines[1].split()
    assert cols in (["image", *NAMES], ["image", *NAMES, "dtSSD"]), lines[:2]  # dtSSD: a clip's frames
    return {parts[0]: dict(zip(cols[1:], map(float, parts[1:]))) for parts in (line.split() for line in lines[2:])}


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


def run(c, **inputs):
    table, error_map = c.outputs("PromptMatteMetrics", **inputs)
    return table, error_map


def error_of(fn, *a, **kw) -> str:
    with pytest.raises(ValueError) as e:
        fn(*a, **kw)
    return str(e.value)


pytestmark = [pytest.mark.inprocess]


def test_registered_with_tooltips(c):
    cls = c["PromptMatteMetrics"]
    info = cls.GET_NODE_INFO_V1()
    assert info["category"] == "matting/PromptMatte"
    assert info["display_name"] == "Matte Metrics"
    assert set(info["input"]["required"]) == {"alpha", "ground_truth"}
    assert set(info["input"]["optional"]) == {"trimap"}
    for section in ("required", "optional"):
        for name, spec in info["input"][section].items():
            assert spec[0] == "MASK" and spec[1].get("tooltip"), name
    assert info["output"] == ["STRING", "IMAGE"] and all(info["output_tooltips"])


def test_an_alpha_against_itself_scores_zero(c):
    gt = rect()
    table, error_map = run(c, alpha=gt.clone(), ground_truth=gt)
    rows = parse(table)
    assert list(rows) == ["1", "mean"]
    assert all(v == 0 for v in rows["mean"].values())
    assert "whole image" in table.splitlines()[0]
    assert tuple(error_map.shape) == (1, 60, 80, 3) and error_map.dtype == torch.float32
    assert float(error_map.abs().max()) == 0.0  # black: no error anywhere


def test_a_shifted_alpha_costs_its_area(c):
    gt = rect()
    shifted = torch.roll(gt, 3, dims=2)  # 3 columns × 40 rows wrong on each side
    table, error_map = run(c, alpha=shifted, ground_truth=gt)
    mean = parse(table)["mean"]
    assert mean["SAD"] == pytest.approx(2 * 3 * 40 / 1000, abs=0.005)
    assert mean["MAD"] == pytest.approx(2 * 3 * 40 / (60 * 80) * 1000, abs=0.005)
    assert mean["MSE"] == mean["MAD"] and mean["Grad"] > 0
    wrong = error_map[0].sum(dim=-1) > 0
    assert int(wrong.sum()) == 2 * 3 * 40  # the error map lights exactly the wrong pixels
    assert bool(wrong[10:50, 20:23].all()) and bool(wrong[10:50, 60:63].all())
    assert torch.allclose(error_map[0, 30, 21], torch.tensor([0.99, 1.0, 0.64]))  # |error| = 1


def test_the_node_reports_the_authors_numbers(c):
    """The golden 'noisy' case (values from the authors' own functions) through the node: MASKs in
    [0, 1] are read as the 8-bit levels they came from."""
    g = np.load(GOLDEN / "cases.npz")
    for case in ("noisy", "noisy_trimap", "resize_up"):
        alpha = torch.from_numpy(g[f"{case}.pred"] / 255.0)[None].float()
        gt = torch.from_numpy(g[f"{case}.gt"] / 255.0)[None].float()
        inputs = dict(alpha=alpha, ground_truth=gt)
        if f"{case}.trimap" in g.files:
            inputs["trimap"] = torch.from_numpy(g[f"{case}.trimap"] / 255.0)[None].float()
        table, error_map = run(c, **inputs)
        got = parse(table)["1"]
        for name, want in zip(NAMES, g[f"{case}.values"]):
            assert got[name] == pytest.approx(float(want), abs=0.0051), (case, name)
        assert tuple(error_map.shape[1:3]) == g[f"{case}.gt"].shape  # the ground truth's size


def test_trimap_measures_only_its_unknown_band(c):
    gt = rect()
    shifted = torch.roll(gt, 3, dims=2)
    trimap = gt.clone()
    trimap[0, :, 15:25] = 0.5  # unknown band around the left edge only
    table, error_map = run(c, alpha=shifted, ground_truth=gt, trimap=trimap)
    mean = parse(table)["mean"]
    assert "unknown region" in table.splitlines()[0]
    assert mean["SAD"] == pytest.approx(3 * 40 / 1000, abs=0.005)
    assert mean["MAD"] == pytest.approx(3 * 40 / (60 * 10) * 1000, abs=0.005)
    # the right edge's error is outside the band: still shown, dimmed
    assert float(error_map[0, 30, 61].max()) == pytest.approx(0.3, abs=0.01)
    assert float(error_map[0, 30, 21].max()) == pytest.approx(1.0, abs=0.01)


def test_batches_pair_or_broadcast(c):
    gt = rect()
    alphas = torch.cat([gt, torch.roll(gt, 2, dims=2), torch.roll(gt, 4, dims=2)])
    table, error_map = run(c, alpha=alphas, ground_truth=gt)  # 3 alphas against one ground truth
    rows = parse(table)
    assert list(rows) == ["1", "2", "3", "mean"]
    assert [rows[k]["SAD"] for k in ("1", "2", "3")] == [0.0, 0.16, 0.32]
    assert rows["mean"]["SAD"] == pytest.approx(0.16, abs=0.005)
    assert tuple(error_map.shape) == (3, 60, 80, 3)
    table, error_map = run(c, alpha=gt, ground_truth=alphas)  # one alpha against 3 ground truths
    assert list(parse(table)) == ["1", "2", "3", "mean"]
    table, _ = run(c, alpha=alphas, ground_truth=alphas)
    assert parse(table)["mean"]["SAD"] == 0


def test_an_alpha_of_another_size_is_resized_to_the_ground_truth(c):
    gt = rect()
    small = torch.nn.functional.interpolate(gt[None], size=(30, 40), mode="nearest")[0]
    table, error_map = run(c, alpha=small, ground_truth=gt)
    assert tuple(error_map.shape) == (1, 60, 80, 3)
    assert 0 < parse(table)["mean"]["SAD"] < 0.2  # only the edges move in the resize


def test_bad_input_is_a_clear_error(c):
    gt = rect()
    msg = error_of(run, c, alpha=torch.cat([gt] * 3), ground_truth=torch.cat([gt] * 2))
    assert "batch mismatch: 3 alphas and 2 ground truths" in msg
    msg = error_of(run, c, alpha=gt, ground_truth=gt, trimap=torch.cat([gt] * 2))
    assert "batch mismatch: 2 trimaps for 1 images" in msg
    msg = error_of(run, c, alpha=gt, ground_truth=gt, trimap=gt)  # 0/1 only: nothing unknown
    assert "no unknown pixels" in msg and "128" in msg
    msg = error_of(run, c, alpha=gt, ground_truth=gt, trimap=torch.full((1, 30, 40), 0.5))
    assert "trimap is 40×30 but the ground truth is 80×60" in msg
    msg = error_of(run, c, alpha=torch.cat([gt, gt * 3]), ground_truth=gt)
    assert msg.startswith("image 2: the alpha has values from 0 to 3") and "[0, 1]" in msg


# ------------------------------------------------------------------ through a real server


@pytest.mark.server
def test_in_a_workflow_on_the_server(comfy_client):
    client = comfy_client
    info = client.object_info("PromptMatteMetrics")["PromptMatteMetrics"]
    assert info["display_name"] == "Matte Metrics" and info["category"] == "matting/PromptMatte"

    gt = np.zeros((60, 80), np.uint8)
    gt[10:50, 20:60] = 255
    names = {}
    for key, arr in (("gt", gt), ("alpha", np.roll(gt, 3, axis=1))):
        buf = _io.BytesIO()
        Image.fromarray(arr, "L").save(buf, format="PNG")
        names[key] = client.upload_image(buf.getvalue(), filename=f"pm_metrics_{key}.png")["name"]
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": names["alpha"]}},
        "2": {"class_type": "LoadImage", "inputs": {"image": names["gt"]}},
        "3": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}},
        "4": {"class_type": "ImageToMask", "inputs": {"image": ["2", 0], "channel": "red"}},
        "5": {"class_type": "PromptMatteMetrics", "inputs": {"alpha": ["3", 0], "ground_truth": ["4", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["5", 1]}},
    }
    result = client.run(graph)
    text = result.outputs["6"]["text"][0]
    assert parse(text)["mean"]["SAD"] == pytest.approx(0.24, abs=0.005)
    preview = result.outputs["7"]["images"][0]
    img = Image.open(_io.BytesIO(client.view(preview["filename"], preview["subfolder"], preview["type"])))
    assert img.size == (80, 60)
    px = np.asarray(img.convert("RGB"))
    assert px[30, 21].tolist() == [252, 255, 163] and px[30, 40].tolist() == [0, 0, 0]

    bad = dict(graph)
    bad["5"] = {"class_type": "PromptMatteMetrics", "inputs": {"alpha": ["3", 0], "ground_truth": ["4", 0],
                                                             "trimap": ["4", 0]}}
    from comfy_host import ExecutionFailed

    with pytest.raises(ExecutionFailed) as e:
        client.run(bad)
    assert "no unknown pixels" in str(e.value)
