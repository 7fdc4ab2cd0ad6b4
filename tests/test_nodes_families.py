"""Every family behind the same nodes, in a real ComfyUI (in-process): Load Matting Model finds the
file and its companion, Matting runs it at the image's own size, refuses prompt kinds it cannot take
before computing, and SIM's classes come out as an image.

The checkpoints are the families' tiny golden ones (tests/tiny_families.py), written into the
test ComfyUI's models/matting and models/sams as a user would put the real files there.
"""

from __future__ import annotations

import importlib
import os
import shutil

import numpy as np
import pytest
import torch

import tiny_families

pytestmark = pytest.mark.golden
SIZE = (128, 160)  # height, width: not square, so a transposition would show


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


@pytest.fixture(scope="module")
def names(comfy_base_dir):
    return tiny_families.install(comfy_base_dir / "models")


@pytest.fixture(scope="module")
def image():
    generator = torch.Generator().manual_seed(7)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 10, generator=generator), size=SIZE,
                                             mode="bilinear", align_corners=False)
    return smooth.permute(0, 2, 3, 1).contiguous()  # (1, H, W, 3) as ComfyUI images are


@pytest.fixture(scope="module")
def subject_mask():
    mask = torch.zeros(1, *SIZE)
    mask[:, 30:100, 40:120] = 1.0
    return mask


def load(c, name: str, companion: str = "auto"):
    (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name=name, precision="auto", companion=companion)
    return patcher


def matte(c, patcher, image, prompt=None):
    args = dict(model=patcher, image=image, transparent=False, resolution=1024, resize="stretch (as the authors)",
                focus="whole image", margin=0.1, merge_objects=False, caption="")
    if prompt is not None:
        args["prompt"] = prompt
    return c.outputs("PromptMatteApply", **args)


def network(c, patcher):
    return importlib.import_module(c.module.__name__ + ".nodes.patcher").network(patcher)


def expected_alpha(c, net, image, prompt) -> torch.Tensor:
    """The family's own forward on the image at its size, the prompt rendered there."""
    render = importlib.import_module(c.module.__name__ + ".matting.render")
    prompt_map, coords = render.render_prompt(prompt, SIZE, SIZE)
    alpha = net(image.permute(0, 3, 1, 2).contiguous(), prompt_map[None], coords[None], prompt.kind, torch.tensor([False]))
    return alpha[:, 0]


def refusal(fn, *args) -> str:
    with pytest.raises(ValueError) as caught:
        fn(*args)
    return str(caught.value)


@pytest.mark.parametrize("family", ["mam", "semat"])
def test_box_prompt_runs_the_family_at_the_image_size(c, names, image, family):
    if family not in names:
        pytest.fail(f"the {family} golden fixtures are missing from this checkout")
    patcher = load(c, names[family])
    net = network(c, patcher)
    assert net.family == family and net.works_at_input_size
    (prompt,) = c.outputs("PromptMatteBox", x1=40, y1=30, x2=120, y2=100)
    alpha, classes = matte(c, patcher, image, prompt)
    assert tuple(alpha.shape) == (1, *SIZE)
    assert torch.equal(alpha, expected_alpha(c, net, image, prompt[0]).clamp(0, 1))
    assert torch.equal(classes, image)  # no semantic classes outside SIM


def test_mam_takes_the_editor_clicks(c, names, image):
    patcher = load(c, names["mam"])
    (prompt,) = c.outputs("PromptMattePoints", points='[{"x": 80, "y": 60}, {"x": 70, "y": 90}]')
    (alpha, _) = matte(c, patcher, image, prompt)
    assert torch.equal(alpha, expected_alpha(c, network(c, patcher), image, prompt[0]).clamp(0, 1))


def test_a_kind_the_family_cannot_take_is_refused_before_computing(c, names, image, subject_mask):
    mam = load(c, names["mam"])
    trimap, _ = c.outputs("PromptMatteTrimap", mask=subject_mask, erode=6, dilate=6)
    message = refusal(matte, c, mam, image, trimap)
    assert "Matting Anything" in message and "a trimap" in message
    assert "points or a box or a mask" in message and "'Matte Prompt: Box'" in message
    message = refusal(matte, c, mam, image)  # nothing connected
    assert "no prompt" in message and "Matte Prompt Editor" in message
    sim = load(c, names["sim"])
    (box,) = c.outputs("PromptMatteBox", x1=40, y1=30, x2=120, y2=100)
    assert "'Matte Prompt: Trimap'" in refusal(matte, c, sim, image, box)


def test_missing_sam_names_the_file_and_the_folder(c, names, comfy_base_dir):
    sams = comfy_base_dir / "models" / "sams"
    sam = sams / "sam_vit_b_01ec64.pth"
    lone = comfy_base_dir / "models" / "matting" / "mam_without_sam.pth"
    shutil.copy(comfy_base_dir / "models" / "matting" / names["mam"], lone)
    parked = sams.parent / "sam_parked.pth"
    sam.rename(parked)
    try:
        message = refusal(load, c, lone.name)
        assert "sam_vit_b_01ec64.pth" in message and str(sams) in message
        # the file picked in the loader's companion input is used whatever its name
        sam_elsewhere = sams / "my_sam_b.pth"
        shutil.copy(parked, sam_elsewhere)
        assert network(c, load(c, lone.name, companion="my_sam_b.pth")).family == "mam"
        sam_elsewhere.unlink()
    finally:
        parked.rename(sam)
        lone.unlink()


def test_sim_shows_its_semantic_classes(c, names, image, subject_mask):
    patcher = load(c, names["sim"])
    prompt, trimap = c.outputs("PromptMatteTrimap", mask=subject_mask, erode=6, dilate=6)
    alpha, classes = matte(c, patcher, image, prompt)
    assert tuple(alpha.shape) == (1, *SIZE) and tuple(classes.shape) == (1, *SIZE, 3)
    unknown = (trimap == 0.5)[0]
    changed = (classes[0] - image[0]).abs().amax(dim=-1) > 1e-6
    assert changed[unknown].float().mean() > 0.9  # coloured where the classifier looked
    assert not changed[~unknown].any()  # the image elsewhere
    assert torch.all(alpha[0][trimap[0] == 1] == 1) and torch.all(alpha[0][trimap[0] == 0] == 0)


def test_aim_runs_with_nothing_connected(c, names, image):
    if "aim" not in names:
        pytest.fail("the AIM golden fixtures are missing from this checkout")
    patcher = load(c, names["aim"])
    (alpha, _) = matte(c, patcher, image)
    assert tuple(alpha.shape) == (1, *SIZE)
    expected = network(c, patcher)(image.permute(0, 3, 1, 2), torch.ones(1, 1, *SIZE), torch.tensor([[0, 0, 1, 1.0]]),
                                   "auto", torch.tensor([False]))[:, 0]
    assert torch.equal(alpha, expected.clamp(0, 1))


def test_every_family_file_is_listed_by_the_loader(c, names):
    model_files = importlib.import_module(c.module.__name__ + ".nodes.model_files")
    listed = model_files.checkpoint_names()
    for family, name in names.items():
        assert name in listed, family
    assert "sam_vit_b_01ec64.pth" in model_files.companion_names()
    assert "classifier_resnet50_best.pth.tar" in listed  # a .pth.tar is a torch file, listed
