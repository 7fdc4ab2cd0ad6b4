"""Matting (video) with every family's tiny checkpoint (random weights: the alphas mean nothing, the
plumbing does): each family runs a clip with a cut end to end from each prompt kind it takes, and
every followed frame reaches the network in the form its family is followed in."""

from __future__ import annotations

import importlib

import pytest
import torch

import tiny_families
from video_clips import make_clip

pytestmark = [pytest.mark.inprocess, pytest.mark.golden, pytest.mark.slow]

# family -> (checkpoint, the kinds it takes, no prompt included as "auto")
FAMILIES = {
    "sdmatte": ("sdmatte_tiny.safetensors", ("point", "box", "mask", "trimap", "auto")),
    "mam": (tiny_families.CHECKPOINTS["mam"], ("point", "box", "mask")),
    "semat": (tiny_families.CHECKPOINTS["semat"], ("box", "mask", "auto")),
    "sim": (tiny_families.CHECKPOINTS["sim"], ("trimap",)),
    "aim": (tiny_families.CHECKPOINTS["aim"], ("auto",)),
}
FORM = {"point": "mask", "box": "box", "mask": "mask", "trimap": "trimap", "auto": "auto"}
CASES = [(family, kind) for family, (_, kinds) in FAMILIES.items() for kind in kinds]


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


@pytest.fixture(scope="module")
def installed(comfy_base_dir, golden_dir):
    return tiny_families.install(comfy_base_dir / "models")


@pytest.fixture(scope="module")
def clip():
    whole = make_clip()
    # 3 frames: the prompted one, one followed, one after the cut; 128 px high (AIM's least)
    size = (128, 224)
    frames = torch.nn.functional.interpolate(whole.frames[whole.cut - 2: whole.cut + 1].permute(0, 3, 1, 2), size=size,
                                             mode="bilinear", align_corners=False).permute(0, 2, 3, 1).contiguous()
    truth = torch.nn.functional.interpolate(whole.alpha[whole.cut - 2][None, None], size=size, mode="bilinear",
                                            align_corners=False)[0, 0]
    return frames.clamp(0, 1), truth


def prompt_of(c, kind, truth):
    mask = (truth[None] > 0.5).float()
    ys, xs = torch.nonzero(mask[0], as_tuple=True)
    if kind == "point":
        x, y = int(xs.float().mean()), int(ys.float().mean())
        return c.outputs("PromptMattePoints", points=f'[{{"x": {x}, "y": {y}}}]')[0]
    if kind == "box":
        return c.outputs("PromptMatteBox", x1=int(xs.min()), y1=int(ys.min()), x2=int(xs.max()) + 1,
                         y2=int(ys.max()) + 1)[0]
    if kind == "mask":
        return c.outputs("PromptMatteMask", mask=mask, threshold=0.5)[0]
    if kind == "trimap":
        return c.outputs("PromptMatteTrimap", mask=mask, erode=4, dilate=8)[0]
    return None


@pytest.mark.parametrize("family,kind", CASES)
def test_each_family_runs_the_clip_from_each_prompt_kind(c, installed, clip, family, kind):
    if family != "sdmatte" and family not in installed:
        pytest.fail(f"the {family} golden fixtures are missing from this checkout")
    frames, truth = clip
    (model,) = c.outputs("PromptMatteModelLoader", ckpt_name=FAMILIES[family][0], precision="auto")
    net = importlib.import_module(c.module.__name__ + ".nodes.patcher").network(model)
    kinds = []  # the prompt kind of each network call
    hook = net.register_forward_pre_hook(lambda module, args: kinds.append(args[3]))
    try:
        args = dict(model=model, frames=frames, prompt_frame=0, transparent=False, resolution=64,
                    resize="stretch (as the authors)", focus="whole image", margin=0.1, caption="",
                    motion_margin=0.08)
        prompt = prompt_of(c, kind, truth)
        if prompt is not None:
            args["prompt"] = prompt
        alpha, report = c.outputs("PromptMatteVideo", **args)
    finally:
        hook.remove()
    assert tuple(alpha.shape) == tuple(frames.shape[:3]) and float(alpha.min()) >= 0 and float(alpha.max()) <= 1
    form = FORM[kind]
    assert (f"followed as a {form}" if form != "auto" else "each frame matted on its own") in report, report
    assert "frame 2: scene cut" in report, report
    assert kinds and kinds[0] == kind  # the user's prompt as given on its frame
    assert set(kinds[1:]) <= {form}, kinds  # every followed frame in the family's form
    if form == "auto":
        assert len(kinds) == len(frames)  # automatic: every frame, the cut included
    else:
        assert len(kinds) <= 2 and float(alpha[2:].abs().sum()) == 0  # never across the cut
