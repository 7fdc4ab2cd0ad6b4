"""The MASK seam: what SAM packs and detectors hand our nodes, in the forms they really emit.

Forms (read off the packs in ../shared/thirdparty, and what the chain workflows' runs show):
- storyicon comfyui_segment_anything, GroundingDinoSAMSegment: one float mask (1, H, W) per image,
  the union of its boxes; when nothing is found, ``torch.zeros((1, H, W), dtype=torch.uint8)``;
- kijai ComfyUI-segment-anything-2, Sam2Segmentation: float (N, H, W), N masks for one image with
  ``individual_objects``; its video segmenter works at the model's 1024² size;
- other nodes: (H, W), (B, 1, H, W), (B, H, W, 1), bool, uint8 0..255.
Every node that takes a MASK accepts them; several masks for one image follow ``combine``; an empty
mask is refused with what to change upstream. (The real packs' outputs through a real server are in
test_workflows.py: 03a and 10.)
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.inprocess, pytest.mark.golden]

CKPT = "sdmatte_tiny.safetensors"
H, W = 96, 128


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


@pytest.fixture(scope="module")
def model(c):
    (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name=CKPT, precision="auto")
    return patcher


def subject(h=H, w=W, box=(40, 20, 90, 70)) -> torch.Tensor:
    x1, y1, x2, y2 = box
    m = torch.zeros(h, w)
    m[y1:y2, x1:x2] = 1
    return m


def matting(c, model, image, prompt, **kw):
    args = dict(model=model, image=image, prompt=prompt, transparent=False, resolution=64,
                resize="stretch (as the authors)", focus="whole image", margin=0.1, merge_objects=False,
                caption="")
    args.update(kw)
    return c.outputs("PromptMatteApply", **args)[0]


def error_of(fn, *a, **kw) -> str:
    with pytest.raises(ValueError) as e:
        fn(*a, **kw)
    return str(e.value)


@pytest.mark.parametrize("form", ["H,W", "B,H,W", "B,1,H,W", "B,H,W,1", "bool", "uint8 0/1", "uint8 0..255",
                                  "numpy"])
def test_every_mask_form_gives_the_same_prompt(c, form):
    m = subject()
    given = {
        "H,W": m,
        "B,H,W": m[None],
        "B,1,H,W": m[None, None],
        "B,H,W,1": m[None, ..., None],
        "bool": m[None] > 0,
        "uint8 0/1": m[None].to(torch.uint8),
        "uint8 0..255": (m[None] * 255).to(torch.uint8),
        "numpy": m[None].numpy(),
    }[form]
    (prompt,) = c.outputs("PromptMatteMask", mask=given, threshold=0.5)
    assert len(prompt) == 1 and prompt[0].kind == "mask"
    assert torch.equal(prompt[0].mask, m)
    (box,) = c.outputs("PromptMatteBox", x1=0, y1=0, x2=0, y2=0, mask=given)
    assert box[0].box == (40, 20, 90, 70)
    (trimap_prompt, trimap) = c.outputs("PromptMatteTrimap", erode=3, dilate=3, mask=given)
    assert trimap.shape == (1, H, W) and trimap[0, 45, 65] == 1 and trimap[0, 0, 0] == 0


def test_an_image_or_a_video_batch_is_refused_with_what_to_connect(c):
    msg = error_of(c.outputs, "PromptMatteMask", mask=torch.rand(1, H, W, 3), threshold=0.5)
    assert "(1, 96, 128, 3)" in msg and "not an IMAGE" in msg


def test_several_masks_for_one_image_follow_combine(c, model):
    """Three objects as Sam2Segmentation with individual_objects emits them: float (3, H, W)."""
    masks = torch.stack([subject(box=(5, 5, 25, 25)), subject(box=(40, 20, 100, 80)), subject(box=(110, 70, 120, 90))])
    (union,) = c.outputs("PromptMatteMask", mask=masks, threshold=0.5)
    assert len(union) == 1 and torch.equal(union[0].mask, masks.amax(0))
    (largest,) = c.outputs("PromptMatteMask", mask=masks, threshold=0.5, combine="largest")
    assert len(largest) == 1 and torch.equal(largest[0].mask, masks[1])
    (each,) = c.outputs("PromptMatteMask", mask=masks, threshold=0.5, combine="each")
    assert [p.bounding_box() for p in each] == [(5, 5, 25, 25), (40, 20, 100, 80), (110, 70, 120, 90)]
    (boxes,) = c.outputs("PromptMatteBox", x1=0, y1=0, x2=0, y2=0, mask=masks)
    assert [p.box for p in boxes] == [(5, 5, 120, 90)]  # the box around the union
    (boxes,) = c.outputs("PromptMatteBox", x1=0, y1=0, x2=0, y2=0, mask=masks, combine="each")
    assert len(boxes) == 3
    image = torch.rand(1, H, W, 3)
    assert matting(c, model, image, union).shape == (1, H, W)
    assert matting(c, model, image, each).shape == (3, H, W)  # one matte per mask, as a batch


def test_a_mask_of_another_size_is_resized_and_the_log_says_so(c, model, caplog):
    """SAM 2's video segmenter answers at 1024² whatever the frame size; a mask at half size must
    prompt the same place of the image."""
    image = torch.rand(1, H, W, 3)
    small = subject(H // 2, W // 2, box=(20, 10, 45, 35))
    (prompt,) = c.outputs("PromptMatteMask", mask=small[None], threshold=0.5)
    with caplog.at_level(logging.WARNING, logger="PromptMatte"):
        alpha = matting(c, model, image, prompt, focus="crop to prompt", resize="keep aspect")
    assert alpha.shape == (1, H, W)
    assert f"{W // 2}×{H // 2} but the image is {W}×{H}" in caplog.text and "resized" in caplog.text
    # cropped around the resized mask's box (40, 20, 90, 70) plus its margin: far corners stay background
    assert alpha[0, -5:, -5:].abs().max() == 0 and alpha[0, :5, :5].abs().max() == 0
    (rgb, _fg, rgba) = c.outputs("PromptMatteComposite", image=image, alpha=small[None, None], background="color",
                                 color="#000000", estimate_foreground=False)
    assert rgba.shape == (1, H, W, 4)
    assert "alpha resized to the image" in caplog.text


def test_the_empty_mask_of_a_detector_that_found_nothing_names_the_detector(c):
    """GroundingDinoSAMSegment's answer when no box passes its threshold."""
    nothing = torch.zeros((1, H, W), dtype=torch.uint8)
    msg = error_of(c.outputs, "PromptMatteMask", mask=nothing, threshold=0.5)
    assert "empty" in msg and "GroundingDinoSAMSegment" in msg and "threshold" in msg
    for node, kw in (("PromptMatteBox", dict(x1=0, y1=0, x2=0, y2=0)), ("PromptMatteTrimap", dict(erode=2, dilate=2))):
        msg = error_of(c.outputs, node, mask=nothing, **kw)
        assert "empty" in msg and "GroundingDinoSAMSegment" in msg


def test_each_names_the_empty_one_and_union_uses_the_rest(c):
    masks = torch.stack([subject(), torch.zeros(H, W), subject(box=(0, 0, 10, 10))])
    msg = error_of(c.outputs, "PromptMatteMask", mask=masks, threshold=0.5, combine="each")
    assert "mask 2 of 3 is empty" in msg and "union" in msg
    (union,) = c.outputs("PromptMatteMask", mask=masks, threshold=0.5)
    assert union[0].mask.sum() == 50 * 50 + 100


def test_metrics_take_the_same_forms(c):
    alpha = subject()
    alpha[20:70, 40] = 0.5  # one soft column, so the errors are not all zero
    gt = subject()
    (plain, _) = c.outputs("PromptMatteMetrics", alpha=alpha[None], ground_truth=gt[None])
    (forms, _) = c.outputs("PromptMatteMetrics", alpha=alpha[None, None], ground_truth=(gt[None, ..., None] * 255).to(torch.uint8))
    (booleans, _) = c.outputs("PromptMatteMetrics", alpha=alpha[None], ground_truth=gt[None] > 0)
    assert forms == plain == booleans
    mad = 50 * 0.5 / (H * W) * 1000  # 50 pixels off by 0.5, mean absolute difference x1000
    assert f"{mad:.2f}" in plain.splitlines()[2].split()


@pytest.fixture()
def core(pack):
    return __import__(f"{pack.__name__}.matting.masks", fromlist=["mask_batch"])


def test_core_mask_batch(core):
    a = np.zeros((2, 4, 5, 1), np.uint8)
    a[1, 1:3, 1:3, 0] = 255
    t = core.mask_batch(a)
    assert t.shape == (2, 4, 5) and t.dtype == torch.float32 and float(t.max()) == 1.0
    with pytest.raises(ValueError, match="combine 'all'"):
        core.combine_masks(t, "all")
