"""Matting (video) on synthetic clips with motion we control (tests/video_clips.py), matted by a
colour-key test double whose alpha is exact, so following is checkable frame by frame: the node runs
in a real ComfyUI in this process. The rule of each prompt form (matting/alpha_prompt.py) is checked
on small arrays by hand."""

from __future__ import annotations

import importlib

import pytest
import torch

import video_clips
from video_clips import ColourKeyMatting, make_clip, soft_iou

pytestmark = [pytest.mark.inprocess]
MOTION = 0.08  # of the 192 px side: 15 px, more than the clip's fastest motion (10 px/frame)


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


@pytest.fixture(scope="module")
def core(pack):
    return {name: importlib.import_module(f"{pack.__name__}.matting.{name}")
            for name in ("alpha_prompt", "follow", "prompt", "pipeline", "trimap")}


@pytest.fixture(scope="module")
def clip():
    return make_clip()


def double_model(prompt_kinds=None):
    import comfy.model_patcher  # noqa: PLC0415  (ComfyUI is imported by the comfy_inprocess fixture)

    net = ColourKeyMatting(prompt_kinds)
    net.device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(net, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def run_video(c, model, frames, prompt=None, prompt_frame=0, keyframes=None, motion_margin=MOTION, **kw):
    args = dict(model=model, frames=frames, prompt_frame=prompt_frame, transparent=False, resolution=1024,
                resize="stretch (as the authors)", focus="whole image", margin=0.1, caption="",
                motion_margin=motion_margin)
    args.update(kw)
    if prompt is not None:
        args["prompt"] = prompt
    if keyframes is not None:
        args["keyframes"] = keyframes
    alpha, report = c.outputs("PromptMatteVideo", **args)
    return alpha, report


def user_prompt(c, clip, kind: str, t: int):
    """The prompt a user would give on frame t, made with the pack's prompt nodes."""
    x, y = clip.centres[t]
    if kind == "point":
        return c.outputs("PromptMattePoints", points=f'[{{"x": {x:.0f}, "y": {y:.0f}}}]')[0]
    if kind == "box":
        r = video_clips.RADIUS + video_clips.STRANDS
        return c.outputs("PromptMatteBox", x1=x - r, y1=y - r, x2=x + r, y2=y + r)[0]
    mask = (clip.alpha[t:t + 1] > 0.5).float()
    if kind == "mask":
        return c.outputs("PromptMatteMask", mask=mask, threshold=0.5)[0]
    return c.outputs("PromptMatteTrimap", mask=mask, erode=4, dilate=12)[0]


def in_view(clip, t: int) -> bool:
    return clip.visible_fraction(t) >= 0.1


# ----------------------------------------------------------------------------- the rules


def test_prompt_from_alpha_follows_each_form_rule(core):
    from_alpha = core["alpha_prompt"].prompt_from_alpha
    alpha = torch.zeros(12, 16)
    alpha[4:7, 5:9] = 1.0  # the subject: rows 4-6, columns 5-8
    alpha[3, 5:9] = 0.3  # a soft edge above it, below the threshold
    mask = from_alpha(alpha, "mask", margin=1)
    expected = torch.zeros(12, 16)
    expected[3:8, 4:10] = 1  # the repository's radius-1 disk (matting.trimap.disk) is the 3×3 square
    assert mask.kind == "mask" and torch.equal(mask.mask, expected)
    box = from_alpha(alpha, "box", margin=2)
    assert box.kind == "box" and box.box == (3.0, 2.0, 11.0, 9.0) and box.source_size == (12, 16)
    assert from_alpha(alpha, "box", margin=10).box == (0.0, 0.0, 16.0, 12.0)  # clipped to the image
    trimap = from_alpha(alpha, "trimap", margin=1).mask
    assert torch.equal(trimap == 1, torch.zeros(12, 16, dtype=torch.bool).index_put_(
        (torch.tensor([5, 5]), torch.tensor([6, 7])), torch.tensor(True)))  # the core eroded by one
    grown = torch.zeros(12, 16)
    grown[2:8, 4:10] = 1  # the soft edge (row 3) counts as touched: grown by one from rows 3-6
    assert torch.equal(trimap > 0, grown > 0)
    assert from_alpha(torch.full((8, 8), 0.4), "mask", margin=2) is None  # nothing above the threshold
    assert from_alpha(alpha, "auto", margin=2).kind == "auto"


def test_followed_form_per_family(core):
    form = core["follow"].followed_form
    sdmatte = ("point", "box", "mask", "trimap", "auto")
    assert form("point", sdmatte) == "mask" and form("box", sdmatte) == "box" and form("trimap", sdmatte) == "trimap"
    assert form("point", ("point", "box", "mask")) == "mask"  # MAM
    assert form("box", ("box", "mask", "auto")) == "box" and form("auto", ("box", "mask", "auto")) == "auto"  # SEMat
    assert form("trimap", ("trimap",)) == "trimap"  # SIM
    assert form("auto", ("auto",)) == "auto"  # AIM


def test_a_jump_to_another_object_is_discarded(core):
    """A model that mattes something else on frame 5 (far from where the subject was): that alpha
    is dropped and following stops, with the reason in the report."""
    follow = core["follow"]
    frames = torch.full((8, 40, 60, 3), 0.5)

    def disk(x):
        yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(60.0), indexing="ij")
        return (((xx - x) ** 2 + (yy - 20) ** 2) < 36).float()

    def matte_frame(frame, prompt):
        t = int(frame[0, 0, 0, 0] * 0) + matte_frame.t
        matte_frame.t += 1
        return disk(50 if t == 5 else 10 + t)

    matte_frame.t = 0
    first = core["prompt"].Prompt.from_mask(disk(10))
    alpha, report = follow.follow(matte_frame, frames, {0: (first, "prompt")}, form="mask", margin=3)
    assert [e.what for e in report.events] == ["jump"] and report.events[0].frame == 5
    assert report.skipped == [5, 6, 7] and float(alpha[5:].abs().sum()) == 0
    assert "jumped" in report.text() and "5-7" in report.text()


# ----------------------------------------------------------------------------- the node, with the double


def test_the_video_nodes_are_registered_with_matting_options_and_tooltips(c):
    matting = c["PromptMatteApply"].GET_NODE_INFO_V1()
    for node_id in ("PromptMatteVideo", "PromptMatteKeyframe"):
        info = c[node_id].GET_NODE_INFO_V1()
        assert info["category"] == matting["category"]
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert all(info["output_tooltips"])
    video = c["PromptMatteVideo"].GET_NODE_INFO_V1()
    assert video["display_name"] == "Matting (video)" and video["output_name"] == ["alpha", "report"]
    names = lambda info: [n for s in ("required", "optional") for n in info["input"].get(s, {})]  # noqa: E731
    shared = [n for n in names(matting) if n not in ("image", "merge_objects")]  # one subject per clip
    assert [n for n in names(video) if n in shared] == shared  # same names, same order
    for name in ("transparent", "resolution", "resize", "focus", "margin", "caption"):
        group = "optional" if name == "caption" else "required"
        assert video["input"][group][name][0] == matting["input"][group][name][0]
        assert video["input"][group][name][1].get("default") == matting["input"][group][name][1].get("default")


@pytest.mark.parametrize("kind", ["point", "box", "mask", "trimap"])
def test_the_double_follows_the_subject_through_motion_and_stops_at_the_cut(c, clip, kind):
    model = double_model()
    prompt = user_prompt(c, clip, kind, 10)  # the middle of the first shot: followed both ways
    alpha, report = run_video(c, model, clip.frames, prompt, prompt_frame=10)
    assert tuple(alpha.shape) == tuple(clip.alpha.shape)
    ious = [soft_iou(alpha[t], clip.alpha[t]) for t in range(clip.cut)]
    assert min(ious) >= 0.95, [round(v, 3) for v in ious]
    # the cut is reported and nothing is matted after it: the distractor stands where the subject was
    assert f"frame {clip.cut}: scene cut" in report and "not followed across a cut" in report
    assert float(alpha[clip.cut:].abs().sum()) == 0
    assert f"Not matted (subject not followed there, alpha 0): {clip.cut}-{len(clip.frames) - 1}" in report
    # the partial exit at the right edge and the way back are reported
    assert f"frame {clip.partly_out[0]}: the subject reaches the right edge" in report
    assert f"frame {clip.partly_out[-1] + 1}: the subject is back in full view" in report
    assert "frame 10 (prompt)" in report
    expected = {"point": "mask", "box": "box", "mask": "mask", "trimap": "trimap"}[kind]
    assert f"followed as a {expected}" in report
    net = model.model
    assert {k for k, _ in net.calls[1:]} == {expected}  # every followed frame got the family's form


@pytest.mark.parametrize("keyframes_as", ["mask batch", "Matte Keyframe"])
def test_a_keyframe_after_the_cut_recovers_the_subject(c, clip, keyframes_as):
    model = double_model()
    key = clip.cut + 2
    if keyframes_as == "mask batch":  # as SAM 2 video segmentation gives: all zero = no prompt there
        keyframes = torch.zeros_like(clip.alpha)
        keyframes[key] = (clip.alpha[key] > 0.5).float()
    else:
        (keyframes,) = c.outputs("PromptMatteKeyframe", prompt=user_prompt(c, clip, "box", key), frame=key)
    alpha, report = run_video(c, model, clip.frames, user_prompt(c, clip, "point", 0), keyframes=keyframes)
    for t in range(len(clip.frames)):
        if clip.cut <= t < key:
            assert float(alpha[t].abs().sum()) == 0, t  # between the cut and the keyframe: not matted
        else:
            assert soft_iou(alpha[t], clip.alpha[t]) >= 0.95, t
    assert f"frame {key} (keyframe)" in report and f"Not matted (subject not followed there, alpha 0): " \
        f"{clip.cut}-{key - 1} (2 frames)" in report


def test_a_subject_that_leaves_is_reported_lost_and_not_followed(c):
    clip = make_clip(n=34, leave=True)
    alpha, report = run_video(c, double_model(), clip.frames, user_prompt(c, clip, "mask", 0))
    lost = next(t for t in range(len(clip.frames)) if not in_view(clip, t))
    assert f"frame {lost}: subject lost" in report, report
    for t in range(len(clip.frames)):
        if in_view(clip, t):
            assert soft_iou(alpha[t], clip.alpha[t]) >= 0.95, t
    assert float(alpha[lost + 1:].abs().sum()) == 0
    assert "scene cut" not in report


def test_an_automatic_family_mattes_every_frame_and_reports_the_cut(c, clip):
    model = double_model(("auto",))
    alpha, report = run_video(c, model, clip.frames)
    assert "each frame matted on its own" in report and f"frame {clip.cut}: scene cut" in report
    assert f"Matted: 0-{len(clip.frames) - 1}" in report
    assert torch.allclose(alpha, clip.frames[..., 2])  # the double's automatic alpha: the whole key


def test_progress_counts_frames_and_cancel_keeps_the_finished_frames(c, clip):
    """Cancel stops between frames; queueing the same inputs again mattes only what was left and
    ends with the alphas of an uninterrupted run."""
    import comfy.model_management as mm
    import comfy.utils

    frames = clip.frames[:12]
    prompt = user_prompt(c, clip, "mask", 0)
    reference, _ = run_video(c, double_model(), frames, prompt)
    model = double_model()
    net = model.model
    updates = []
    stop_after = 5

    def hook(value, total, preview, node_id=None):
        updates.append((value, total))
        if value == stop_after:
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_video(c, model, frames, prompt)
    finally:
        mm.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(None)
    assert updates == [(i, 12) for i in range(1, stop_after + 1)]
    assert len(net.calls) == stop_after
    alpha, report = run_video(c, model, frames, prompt)
    assert len(net.calls) == 12  # the 7 frames left, not 12 again
    assert torch.equal(alpha, reference) and f"Resumed: {stop_after} frames kept" in report


def test_bad_inputs_are_clear_errors(c, clip):
    model = double_model()
    prompt = user_prompt(c, clip, "box", 0)
    with pytest.raises(ValueError, match="prompt_frame is 50, but the clip has frames 0 to 39"):
        run_video(c, model, clip.frames, prompt, prompt_frame=50)
    with pytest.raises(ValueError, match="one mask per frame"):
        run_video(c, model, clip.frames, prompt, keyframes=torch.zeros(3, 112, 192))
    two = prompt + prompt
    with pytest.raises(ValueError, match="follows one subject"):
        run_video(c, model, clip.frames, two)
    sim_like = double_model(("trimap",))
    with pytest.raises(ValueError, match="cannot matte with a box"):
        run_video(c, sim_like, clip.frames, prompt)


# ----------------------------------------------------------------------------- dtSSD


def reference_dtssd(pred, true):
    """Robust Video Matting's evaluation, restated: 8-bit frames / 255 in float32; frame 0 counts 0;
    frame t: 100 · sqrt(sum over pixels of ((p_t - p_t-1) - (g_t - g_t-1))² / pixel count)."""
    import numpy as np

    pred = [np.asarray(p, dtype=np.float32) / 255 for p in pred]
    true = [np.asarray(g, dtype=np.float32) / 255 for g in true]
    values = [0.0]
    for t in range(1, len(pred)):
        squared = ((pred[t] - pred[t - 1]) - (true[t] - true[t - 1])) ** 2
        values.append(float(np.sqrt(np.sum(squared) / true[t].size) * 1e2))
    return values


def test_dtssd_is_robust_video_mattings(pack):
    import numpy as np

    metrics = importlib.import_module(f"{pack.__name__}.matting.metrics")
    still = np.zeros((2, 2), np.float32)
    flash = still.copy()
    flash[0, 0] = 255  # one pixel of four changes by 1 where the truth stays still: sqrt(1 / 4) · 100
    assert metrics.dtssd([still, flash], [still, still]) == [0.0, 50.0]
    assert metrics.dtssd([still, flash], [still, flash]) == [0.0, 0.0]  # the same change as the truth
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 256, (6, 9, 13)).astype(np.float32)
    true = rng.integers(0, 256, (6, 9, 13)).astype(np.float32)
    ours, theirs = metrics.dtssd(pred, true), reference_dtssd(pred, true)
    assert np.allclose(ours, theirs, rtol=1e-5, atol=0)
    # fp64 all the way: ours is at least as close as the reference's own float32 sum
    exact = [0.0] + [float(np.sqrt(np.mean(((pred[t].astype(np.float64) - pred[t - 1]) - (true[t] - true[t - 1])) ** 2
                                            / 255 ** 2)) * 100) for t in range(1, 6)]
    assert max(abs(a - b) for a, b in zip(ours, exact)) <= max(abs(a - b) for a, b in zip(theirs, exact)) + 1e-9
    with pytest.raises(metrics.MetricsError, match="share one size"):
        metrics.dtssd([still, np.zeros((3, 3))], [still, np.zeros((3, 3))])


def test_matte_metrics_adds_dtssd_for_a_clip(c, clip):
    import numpy as np

    truth = clip.alpha[:6]
    jitter = truth.clone()
    jitter[1::2] = torch.roll(truth[1::2], 2, dims=-1)  # every other frame shifted: flicker
    table, _ = c.outputs("PromptMatteMetrics", alpha=jitter, ground_truth=truth)
    lines = table.splitlines()
    assert "dtSSD x100" in lines[0] and lines[1].split()[-1] == "dtSSD"
    levels = lambda m: np.round(m.numpy().astype(np.float64) * 255).astype(np.float32)  # noqa: E731
    expected = reference_dtssd([levels(a) for a in jitter], [levels(g) for g in truth])
    rows = [line.split() for line in lines[2:]]
    assert [float(r[-1]) for r in rows[:-1]] == [round(v, 2) for v in expected]
    assert rows[-1][0] == "mean" and float(rows[-1][-1]) == round(float(np.mean(expected)), 2)
    single, _ = c.outputs("PromptMatteMetrics", alpha=jitter[:1], ground_truth=truth[:1])
    assert "dtSSD" not in single  # one image: no clip


# ----------------------------------------------------------------------------- streaming memory

MEMORY_SCRIPT = '''
import json, sys
import torch
from PromptMatte.matting.follow import follow
from PromptMatte.matting.pipeline import matte
from PromptMatte.matting.prompt import Prompt

torch.set_num_threads(1)
n, height, width = int(sys.argv[1]), 288, 512


class SmallModel(torch.nn.Module):
    """A few full-resolution convolutions (their activations are one frame's working set) and the
    colour key of the clip (blue = alpha) within the prompt, grown by 8 px, so that following works."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, image, prompt_map, coords, kind, transparent):
        region = torch.nn.functional.max_pool2d((prompt_map > 0).float(), 17, stride=1, padding=8)
        learned = torch.sigmoid(self.net(torch.cat([image, prompt_map], dim=1)))
        return image[:, 2:3] * region + 0 * learned


model = SmallModel().eval()


def run():
    frames = torch.rand(n, height, width, 3).mul_(0.5)  # in place: no second clip-sized tensor
    frames[..., 2] = 0
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for t in range(n):  # a disk moving 2 px per frame, back and forth
        x = 100 + (t * 2) % 300
        frames[t, ..., 2] = ((xx - x) ** 2 + (yy - 140) ** 2 < 50 ** 2).float()
    first = Prompt.from_mask(frames[0, ..., 2])

    def matte_frame(frame, prompt):
        with torch.inference_mode():
            return matte(lambda *a: model(*a), frame, [prompt], at_input_size=True)[0]

    alpha, report = follow(matte_frame, frames, {0: (first, "prompt")}, form="mask", margin=10)
    assert len(report.matted) == n, report.text()
    run.held = (frames, alpha)


peak = forward_peak(run)
print(json.dumps({"peak": peak, "data": run.held[0].nbytes + run.held[1].nbytes}))
'''


@pytest.mark.slow
def test_memory_stays_flat_with_the_clip_length(pack):
    """Peak resident memory of following 120 frames at 512×288 against 30: what grows is the frames
    and the alphas themselves (within 10 %), not a per-frame working set."""
    from peak_memory import measure_in_child

    short, long = (measure_in_child(pack, MEMORY_SCRIPT, n, timeout=600) for n in (30, 120))
    growth, data = long["peak"] - short["peak"], long["data"] - short["data"]
    assert growth <= 1.10 * data, (f"120 frames took {growth / 2**20:.0f} MiB more than 30 at peak; their frames "
                                   f"and alphas are {data / 2**20:.0f} MiB")
