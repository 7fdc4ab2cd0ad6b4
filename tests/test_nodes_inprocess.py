"""The PromptMatte nodes run by ComfyUI in this process: memory management, sharing, conventions,
prompt nodes and the error messages users see. (The same graphs through a real server are in
test_nodes_server.py.)"""

from __future__ import annotations

import gc
import importlib
import os
import shutil
import sys
import weakref

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.inprocess, pytest.mark.golden]

CKPT = "sdmatte_tiny.safetensors"
RES = 64  # working resolution (the golden image is 128×128)
IMG = 128


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


@pytest.fixture(scope="module")
def mod(c):
    """The pack's node modules as ComfyUI imported them."""
    base = c.module.__name__
    return {name: sys.modules[f"{base}.nodes.{name}"] for name in ("patcher", "model_files", "apply", "composite", "prompts")}


@pytest.fixture(scope="module")
def model(c):
    (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name=CKPT, precision="auto")
    return patcher


@pytest.fixture(scope="module")
def image(golden_dir):
    img = np.load(golden_dir / "sdmatte_tiny" / "cases.npz")["image"]  # (3, H, W)
    return torch.from_numpy(img).permute(1, 2, 0)[None].contiguous()  # (1, H, W, 3)


def apply(c, model, image, prompt=None, **kw):
    args = dict(model=model, image=image, transparent=False, resolution=RES,
                resize="stretch (as the authors)", focus="whole image", margin=0.1,
                merge_objects=False, caption="")
    args.update(kw)
    if prompt is not None:
        args["prompt"] = prompt
    return c.outputs("PromptMatteApply", **args)[0]


def error_of(fn, *a, **kw) -> str:
    with pytest.raises(ValueError) as e:
        fn(*a, **kw)
    return str(e.value)


# ------------------------------------------------------------------ registration


def test_all_nodes_registered_with_tooltips(c):
    ids = ["PromptMatteModelLoader", "PromptMattePoints", "PromptMatteBox", "PromptMatteMask",
           "PromptMatteTrimap", "PromptMatteApply", "PromptMatteComposite"]
    for node_id in ids:
        cls = c[node_id]
        info = cls.GET_NODE_INFO_V1()
        assert info["category"] == "matting/PromptMatte"
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert all(info["output_tooltips"]), f"{node_id} has an output without tooltip"


def test_known_weights_listed_even_when_absent(c, mod):
    spec = c["PromptMatteModelLoader"].GET_NODE_INFO_V1()["input"]["required"]["ckpt_name"]
    names = spec[1]["options"] if spec[0] == "COMBO" else spec[0]
    assert CKPT in names
    for known in mod["model_files"].known_models():
        assert known in names
    # a new loader node starts on the confirmed, downloadable safetensors file
    assert spec[1]["default"] == "SDMatte.safetensors"


def test_model_folder_paths(c, mod, tmp_path):
    import folder_paths

    paths = folder_paths.get_folder_paths("sdmatte")
    assert paths[0].endswith("sdmatte") and any(p.endswith("SDMatte") for p in paths)
    # an extra_model_paths.yaml entry (ComfyUI registers it before custom nodes load) is kept
    extra = tmp_path / "extra_sdmatte"
    extra.mkdir()
    (extra / "mine.safetensors").write_bytes(b"x")
    folder_paths.add_model_folder_path("sdmatte", str(extra))
    mod["model_files"].register_model_folder()
    try:
        assert str(extra) in folder_paths.get_folder_paths("sdmatte")
        assert "mine.safetensors" in mod["model_files"].checkpoint_names()
    finally:
        paths, exts = folder_paths.folder_names_and_paths["sdmatte"]
        paths.remove(str(extra))


# ------------------------------------------------------------------ memory management


def test_model_is_managed_by_comfyui_and_freed(c, mod, comfy_base_dir, image):
    """Loaded through load_models_gpu during a run; after what POST /free does (unload all models,
    drop the node cache), the weights are gone."""
    import comfy.model_management as mm

    src = comfy_base_dir / "models" / "sdmatte" / CKPT
    copy = comfy_base_dir / "models" / "sdmatte" / "free_test_copy.safetensors"
    shutil.copyfile(src, copy)
    try:
        (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name=copy.name, precision="fp32")
        (again,) = c.outputs("PromptMatteModelLoader", ckpt_name=copy.name, precision="fp32")
        assert again is patcher  # one copy per file
        net = mod["patcher"].network(patcher)
        seen = []
        hook = net.register_forward_pre_hook(
            lambda m, a: seen.append(any(lm.model is patcher for lm in mm.current_loaded_models)))
        (prompt,) = c.outputs("PromptMattePoints", points='[{"x": 64, "y": 64}]')
        alpha = apply(c, patcher, image, prompt)
        hook.remove()
        assert seen and all(seen), "the model was not in current_loaded_models while it ran"
        assert alpha.shape == (1, IMG, IMG)

        net_ref = weakref.ref(net)
        mm.unload_all_models()  # POST /free {"unload_models": true}
        assert not any(lm.model is patcher for lm in mm.current_loaded_models)
        del patcher, again, net, prompt, alpha  # {"free_memory": true}: the node cache is dropped
        gc.collect()
        assert net_ref() is None, "the weights are still referenced after unloading"
    finally:
        copy.unlink()


def test_precision_choices(c, mod):
    (p16,) = c.outputs("PromptMatteModelLoader", ckpt_name=CKPT, precision="bf16")
    assert mod["patcher"].network(p16).dtype == torch.bfloat16
    (p32,) = c.outputs("PromptMatteModelLoader", ckpt_name=CKPT, precision="fp32")
    assert mod["patcher"].network(p32).dtype == torch.float32
    assert p16 is not p32


def test_partial_low_vram_load_gives_the_same_alpha(c, mod, model, image):
    """--lowvram / --novram: ComfyUI loads only part of the weights and streams the rest. Our
    layers carry comfy.ops casting, so a partial load computes the same alpha."""
    (prompt,) = c.outputs("PromptMatteBox", x1=30, y1=20, x2=100, y2=120)
    full = apply(c, model, image, prompt, detail="off")  # as the bare pipeline below
    model.detach()
    model.load(torch.device("cpu"), lowvram_model_memory=64 * 1024)
    try:
        assert model.model.model_lowvram
        net = mod["patcher"].network(model)
        with torch.inference_mode():
            from_matting = mod["apply"].matte(
                lambda im, pm, co, k, t: net(im, pm, co, k, t), image, prompt, resolution=RES)
        assert torch.allclose(from_matting, full, atol=1e-5)
    finally:
        model.detach()


# ------------------------------------------------------------------ prompts and batches


def test_points_node_formats(c):
    (p,) = c.outputs("PromptMattePoints", points='[{"x": 10, "y": 20}, {"x": 30.5, "y": 40}]')
    assert p[0].kind == "point" and p[0].points == ((10.0, 20.0), (30.5, 40.0))
    (q,) = c.outputs("PromptMattePoints", points="[{'x': 10, 'y': 20}]")  # str() of a dict list
    assert q[0].points == ((10.0, 20.0),)


def test_box_node_sources(c):
    (p,) = c.outputs("PromptMatteBox", x1=10, y1=20, x2=50, y2=60)
    assert p[0].box == (10, 20, 50, 60)
    (q,) = c.outputs("PromptMatteBox", x1=0, y1=0, x2=0, y2=0, bboxes=[(1, 2, 30, 40), (5, 6, 70, 80)])
    assert [x.box for x in q] == [(1, 2, 30, 40), (5, 6, 70, 80)]
    m = torch.zeros(1, 64, 64)
    m[0, 10:20, 30:45] = 1
    (r,) = c.outputs("PromptMatteBox", x1=0, y1=0, x2=0, y2=0, mask=m)
    assert r[0].box == (30, 10, 45, 20)


def test_mask_node_batch_and_segs(c):
    m = torch.zeros(2, 32, 32)
    m[0, 5:10, 5:10] = 1
    m[1, 20:30, 1:4] = 0.9
    (p,) = c.outputs("PromptMatteMask", mask=m, threshold=0.5, combine="each")
    assert len(p) == 2 and all(x.kind == "mask" for x in p)
    (u,) = c.outputs("PromptMatteMask", mask=m, threshold=0.5)  # combine: union by default
    assert len(u) == 1 and u[0].mask.sum() == 25 + 30
    from collections import namedtuple

    SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                             "control_net_wrapper"])
    seg = SEG(None, np.ones((4, 6), np.float32), 0.9, (10, 12, 16, 16), (10, 12, 16, 16), "x", None)
    (q,) = c.outputs("PromptMatteMask", threshold=0.5, segs=((32, 32), [seg]))
    assert q[0].mask.shape == (32, 32) and q[0].mask.sum() == 24 and q[0].mask[12, 10] == 1


def test_trimap_node(c):
    m = torch.zeros(1, 64, 64)
    m[0, 16:48, 16:48] = 1
    prompt, tri = c.outputs("PromptMatteTrimap", erode=4, dilate=4, mask=m)
    assert prompt[0].kind == "trimap" and tri.shape == (1, 64, 64)
    assert set(torch.unique(tri).tolist()) == {0.0, 0.5, 1.0}
    assert tri[0, 32, 32] == 1 and tri[0, 0, 0] == 0 and tri[0, 16, 32] == 0.5
    given = torch.full((1, 64, 64), 0.5)
    prompt2, tri2 = c.outputs("PromptMatteTrimap", erode=4, dilate=4, trimap=given)
    assert torch.equal(tri2, given)


def test_one_image_several_objects(c, model, image):
    (boxes,) = c.outputs("PromptMatteBox", x1=0, y1=0, x2=0, y2=0, bboxes=[(0, 0, 60, 60), (60, 60, 128, 128)])
    each = apply(c, model, image, boxes)
    assert each.shape == (2, IMG, IMG)
    union = apply(c, model, image, boxes, merge_objects=True)
    assert union.shape == (1, IMG, IMG)
    assert torch.allclose(union[0], each.max(dim=0).values, atol=1e-5)


def test_automatic_and_keep_aspect_and_crop(c, model, image):
    auto = apply(c, model, image)
    assert auto.shape == (1, IMG, IMG) and 0 <= auto.min() and auto.max() <= 1
    wide = torch.rand(1, 96, 160, 3)
    (p,) = c.outputs("PromptMatteBox", x1=40, y1=20, x2=100, y2=80)
    out = apply(c, model, wide, p, resize="keep aspect", focus="crop to prompt", resolution=64)
    assert out.shape == (1, 96, 160)
    assert out[0, :, :5].abs().max() == 0  # outside the crop: background


def test_progress_bar_advances_per_item(c, model):
    import comfy.utils

    calls = []
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total)))
    try:
        apply(c, model, torch.rand(3, 64, 64, 3), None, resolution=64)
    finally:
        comfy.utils.set_progress_bar_global_hook(old)
    assert [v for v, t in calls] == [1, 2, 3] and all(t == 3 for v, t in calls)  # one step per image


def test_interrupt_between_items(c, model):
    import comfy.model_management as mm

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            apply(c, model, torch.rand(2, 64, 64, 3), None, resolution=64)
    finally:
        mm.interrupt_current_processing(False)
    assert apply(c, model, torch.rand(1, 64, 64, 3), None, resolution=64).shape == (1, 64, 64)


# ------------------------------------------------------------------ ComfyUI conventions


def test_alpha_invert_join_equals_rgba(c, model, image):
    """Core 'Join Image with Alpha' takes 1 - alpha (Load Image's mask convention): our alpha
    through 'Invert Mask' then 'Join Image with Alpha' equals Matte Composite's rgba."""
    (p,) = c.outputs("PromptMattePoints", points='[{"x": 64, "y": 64}]')
    alpha = apply(c, model, image, p)
    _, _, rgba = c.outputs("PromptMatteComposite", image=image, alpha=alpha, background="transparent",
                           color="#000000", estimate_foreground=False)
    (inv,) = c.outputs("InvertMask", mask=alpha)
    (joined,) = c.outputs("JoinImageWithAlpha", image=image, alpha=inv)
    assert rgba.shape == joined.shape == (1, IMG, IMG, 4)
    assert torch.allclose(rgba, joined, atol=1e-6)


def test_mask_painted_in_load_image_works_as_mask_prompt(c, comfy_base_dir):
    """Load Image's mask editor saves the painted area as alpha 0; LoadImage outputs 1 - alpha, so
    the painted area arrives as 1 and is the subject, with no inversion."""
    from PIL import Image

    rgba = np.full((64, 80, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[10:30, 20:50, 3] = 0  # painted
    Image.fromarray(rgba, "RGBA").save(comfy_base_dir / "input" / "painted_mask.png")
    _, mask = c.outputs("LoadImage", image="painted_mask.png")
    (p,) = c.outputs("PromptMatteMask", mask=mask, threshold=0.5)
    assert p[0].bounding_box() == (20.0, 10.0, 50.0, 30.0)
    assert p[0].mask.sum() == 20 * 30


def test_composite_backgrounds(c):
    img = torch.rand(1, 16, 16, 3)
    a = torch.zeros(1, 16, 16)
    a[:, 4:12, 4:12] = 1
    comp, fg, rgba = c.outputs("PromptMatteComposite", image=img, alpha=a, background="color",
                               color="#ff0000", estimate_foreground=True)
    assert torch.allclose(comp[0, 0, 0], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(comp[0, 8, 8], fg[0, 8, 8]) and rgba[0, 8, 8, 3] == 1 and rgba[0, 0, 0, 3] == 0
    bg = torch.ones(1, 8, 8, 3) * 0.25
    comp2, _, _ = c.outputs("PromptMatteComposite", image=img, alpha=a, background="image", color="#000",
                            estimate_foreground=False, background_image=bg)
    assert torch.allclose(comp2[0, 0, 0], torch.full((3,), 0.25)) and torch.allclose(comp2[0, 8, 8], img[0, 8, 8])


# ------------------------------------------------------------------ bad input: clear messages


def test_error_more_than_10_points(c):
    pts = "[" + ",".join('{"x": %d, "y": 5}' % i for i in range(11)) + "]"
    msg = error_of(c.outputs, "PromptMattePoints", points=pts)
    assert "11 points" in msg and "at most 10" in msg and "remove 1" in msg


def test_error_point_outside_image(c, model, image):
    (p,) = c.outputs("PromptMattePoints", points='[{"x": 500, "y": 5}]')
    msg = error_of(apply, c, model, image, p)
    assert "outside" in msg and "128×128" in msg


def test_error_malformed_json(c):
    msg = error_of(c.outputs, "PromptMattePoints", points='[{"x": 1, "y": ]')
    assert "malformed" in msg and '[{"x": 10, "y": 20}' in msg


def test_error_empty_mask(c):
    msg = error_of(c.outputs, "PromptMatteMask", mask=torch.zeros(1, 32, 32), threshold=0.5)
    assert "empty" in msg
    msg = error_of(c.outputs, "PromptMatteBox", x1=0, y1=0, x2=0, y2=0, mask=torch.zeros(1, 32, 32))
    assert "empty" in msg


def test_error_zero_area_box(c):
    msg = error_of(c.outputs, "PromptMatteBox", x1=10, y1=10, x2=10, y2=50)
    assert "zero area" in msg


def test_error_batch_mismatch(c, model):
    (p,) = c.outputs("PromptMatteMask", mask=torch.ones(3, 64, 64), threshold=0.5, combine="each")
    msg = error_of(apply, c, model, torch.rand(2, 64, 64, 3), p, resolution=64)
    assert "batch mismatch" in msg and "2 images and 3 prompts" in msg


def test_error_rgba_image(c, model):
    msg = error_of(apply, c, model, torch.rand(1, 64, 64, 4), None, resolution=64)
    assert "4 channels" in msg and "RGB" in msg


def test_error_image_smaller_than_latent_grid(c, model):
    msg = error_of(apply, c, model, torch.rand(1, 4, 6, 3), None, resolution=64)
    assert "at least 8×8" in msg and "upscale" in msg


def test_error_nan_pixels(c, model):
    img = torch.rand(1, 64, 64, 3)
    img[0, 3, 3, 1] = float("nan")
    msg = error_of(apply, c, model, img, None, resolution=64)
    assert "NaN" in msg


def test_error_wrong_checkpoint_family(c, comfy_base_dir):
    from safetensors.torch import save_file

    bad = comfy_base_dir / "models" / "sdmatte" / "not_a_matting_model.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}, str(bad))
    try:
        msg = error_of(c.outputs, "PromptMatteModelLoader", ckpt_name=bad.name, precision="auto")
        assert "SDMatte" in msg
    finally:
        bad.unlink()


def test_error_unknown_checkpoint_names_the_folder(c):
    msg = error_of(c.outputs, "PromptMatteModelLoader", ckpt_name="nope.safetensors", precision="auto")
    assert "models" in msg and "sdmatte" in msg and "Put the file there" in msg


def test_error_bad_bboxes_and_segs(c):
    assert "boxes (x1, y1, x2, y2)" in error_of(c.outputs, "PromptMatteBox", x1=0, y1=0, x2=0, y2=0,
                                                 bboxes=["abc"])
    assert "empty" in error_of(c.outputs, "PromptMatteBox", x1=0, y1=0, x2=0, y2=0, bboxes=[])
    assert "SEGS" in error_of(c.outputs, "PromptMatteMask", threshold=0.5, segs="nonsense")
    assert "connect one" in error_of(c.outputs, "PromptMatteMask", threshold=0.5)
    assert "hex" in error_of(c.outputs, "PromptMatteComposite", image=torch.rand(1, 8, 8, 3),
                             alpha=torch.ones(1, 8, 8), background="color", color="green",
                             estimate_foreground=False)


def test_hugging_face_layout_folder(c, mod, comfy_base_dir, golden_dir, image):
    """A model folder in the authors' HF layout (unet/, vae/, text_encoder/) is one entry."""
    from safetensors.torch import load_file, save_file

    folder = comfy_base_dir / "models" / "sdmatte" / "SDMatte_hf"
    tensors = load_file(str(golden_dir / "sdmatte_tiny" / "model.safetensors"))
    try:
        for comp in ("unet", "vae", "text_encoder"):
            (folder / comp).mkdir(parents=True)
            part = {k[len(comp) + 1:]: v for k, v in tensors.items() if k.startswith(comp + ".")}
            save_file(part, str(folder / comp / "diffusion_pytorch_model.safetensors"))
        names = mod["model_files"].checkpoint_names()
        assert "SDMatte_hf" in names
        assert not any(n.startswith("SDMatte_hf/") or n.startswith("SDMatte_hf\\") for n in names)
        (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name="SDMatte_hf", precision="fp32")
        assert apply(c, patcher, image).shape == (1, IMG, IMG)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_loader_fingerprint_follows_the_file(c, comfy_base_dir):
    cls = c["PromptMatteModelLoader"]
    path = comfy_base_dir / "models" / "sdmatte" / "fingerprint.safetensors"
    path.write_bytes(b"1234")
    try:
        first = cls.fingerprint_inputs(ckpt_name=path.name, precision="auto")
        path.write_bytes(b"123456")
        assert cls.fingerprint_inputs(ckpt_name=path.name, precision="auto") != first
    finally:
        path.unlink()
    assert cls.fingerprint_inputs(ckpt_name="SDMatte.pth", precision="auto") == ("SDMatte.pth", "auto", "auto")


def test_general_matting_folder_is_listed_and_loads(c, mod, comfy_base_dir, golden_dir):
    target = comfy_base_dir / "models" / "matting" / "lite_in_matting_folder.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(golden_dir / "litesdmatte_tiny" / "model.safetensors", target)
    try:
        assert target.name in mod["model_files"].checkpoint_names()
        (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name=target.name, precision="auto")
        assert mod["patcher"].network(patcher).family == "litesdmatte"
    finally:
        target.unlink()


def test_companion_is_found_in_sams_then_beside_the_checkpoint(c, mod, comfy_base_dir, tmp_path):
    model_files = mod["model_files"]
    engine = importlib.import_module(c.module.__name__ + ".models")
    companion = engine.Companion("sam", "a Segment Anything checkpoint", ("sam_demo_companion.pth",), "sams")
    checkpoint = tmp_path / "mam_demo.pth"
    beside = tmp_path / "sam_demo_companion.pth"
    beside.write_bytes(b"beside")
    assert model_files.companion_finder(str(checkpoint))(companion) == str(beside)
    in_sams = comfy_base_dir / "models" / "sams" / "sam_demo_companion.pth"
    in_sams.parent.mkdir(parents=True, exist_ok=True)
    in_sams.write_bytes(b"sams")
    try:
        assert "sam_demo_companion.pth" in model_files.companion_names()
        assert os.path.samefile(model_files.companion_finder(str(checkpoint))(companion), in_sams)
        chosen = model_files.companion_finder(str(checkpoint), "sam_demo_companion.pth")(companion)
        assert os.path.samefile(chosen, in_sams)
    finally:
        in_sams.unlink()
    beside.unlink()
    assert model_files.companion_finder(str(checkpoint))(companion) is None


def test_error_resolution_not_multiple_of_64(c, model, image):
    msg = error_of(apply, c, model, image, None, resolution=100)
    assert "multiple of 64" in msg


def test_editor_node_registered_when_present(c, comfy_base_dir):
    from pathlib import Path

    editor = Path(c.module.__file__).parent / "nodes" / "editor.py"
    assert ("PromptMatteEditor" in c.classes) == editor.is_file()


def test_apply_returns_an_alpha_preview_for_the_editor(c, model, image):
    import folder_paths
    from PIL import Image

    out = c.run("PromptMatteApply", model=model, image=image, transparent=False, resolution=RES,
                resize="stretch (as the authors)", focus="whole image", margin=0.1, merge_objects=False)
    ref = out.ui["promptmatte_alpha"][0]
    assert ref["type"] == "temp"
    png = Image.open(f"{folder_paths.get_temp_directory()}/{ref['subfolder']}/{ref['filename']}")
    assert png.mode == "L" and png.size == (IMG, IMG)
    expected = (out.result[0][0].numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(np.asarray(png).astype(int) - expected).max() <= 1
    # SDMatte reports no semantic classes: its semantic_classes output is the image itself
    assert torch.equal(out.result[1], image.float())


def test_auto_precision_follows_the_evidence(mod, monkeypatch):
    """fp32 on the CPU and on GPUs that hold it; else fp16 (9x closer to fp32 than bf16), bf16 last."""
    import comfy.model_management as mm
    from comfy.cli_args import args

    pick = mod["patcher"].pick_dtype
    gpu = torch.device("cpu")  # stands in for a GPU once is_device_cpu says no
    assert pick("auto", gpu, 10 << 30) == torch.float32
    monkeypatch.setattr(mm, "is_device_cpu", lambda d: False)
    monkeypatch.setattr(mm, "get_total_memory", lambda dev=None, torch_total_too=False: 12 << 30)
    monkeypatch.setattr(mm, "should_use_fp16", lambda device=None, **kw: True)
    monkeypatch.setattr(mm, "should_use_bf16", lambda device=None, **kw: True)
    sdmatte_fp32 = int(3.8 * (1 << 30))  # SDMatte's UNet + autoencoder in fp32
    assert pick("auto", gpu, sdmatte_fp32) == torch.float32  # a 12 GB card holds it
    monkeypatch.setattr(mm, "get_total_memory", lambda dev=None, torch_total_too=False: 6 << 30)
    assert pick("auto", gpu, sdmatte_fp32) == torch.float16  # a 6 GB one does not
    monkeypatch.setattr(mm, "should_use_fp16", lambda device=None, **kw: False)
    assert pick("auto", gpu, sdmatte_fp32) == torch.bfloat16
    monkeypatch.setattr(args, "fp16_unet", True)  # ComfyUI's own flag wins
    assert pick("auto", gpu, sdmatte_fp32) == torch.float16
    assert pick("fp32", gpu, sdmatte_fp32) == torch.float32
    assert "precision" in error_of(pick, "fp8", gpu)
