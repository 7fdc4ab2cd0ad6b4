"""The resize / crop / batch pipeline around a matting model.

The model is a plain function that returns its prompt map as the alpha (and
records what it was given), so where a prompt lands in the output is checkable.
"""

import importlib

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="module")
def M(pack):
    return importlib.import_module(pack.__name__ + ".matting")


class EchoModel:
    """alpha = prompt map; remembers every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, image, prompt_map, coords, kind, transparent):
        self.calls.append(
            dict(image=image.clone(), map=prompt_map.clone(), coords=coords.clone(), kind=kind,
                 transparent=transparent.clone())
        )
        assert image.dim() == 4 and image.shape[1] == 3
        assert prompt_map.shape == (image.shape[0], 1, *image.shape[-2:])
        assert image.shape[-2] % 8 == 0 and image.shape[-1] % 8 == 0
        return prompt_map.clone()


def _images(b=1, h=120, w=160, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, w, 3, generator=g)


def _bbox(alpha, thr=0.5):
    alpha = alpha.reshape(alpha.shape[-2:])
    ys, xs = torch.nonzero(alpha > thr, as_tuple=True)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


# ------------------------------------------------------------ resize modes


def test_stretch_feeds_the_model_a_square_bilinear_resize(M):
    img = _images(1, 120, 160)
    model = EchoModel()
    alpha = M.matte(model, img, [M.Prompt.from_box(40, 30, 120, 90)], resolution=128)
    call = model.calls[0]
    assert call["image"].shape == (1, 3, 128, 128)
    ref = F.interpolate(img.permute(0, 3, 1, 2), size=(128, 128), mode="bilinear", align_corners=False)
    assert torch.allclose(call["image"], ref, atol=1e-6)
    assert call["kind"] == "box" and call["coords"].shape == (1, 4)
    assert torch.allclose(call["coords"][0], torch.tensor([40 / 160, 30 / 120, 120 / 160, 90 / 120]))
    assert alpha.shape == (1, 120, 160) and alpha.dtype == torch.float32
    assert _bbox(alpha) == (40, 30, 120, 90)


def test_keep_aspect_works_at_multiples_of_8_and_returns_the_image_size(M):
    img = _images(1, 300, 200)
    model = EchoModel()
    alpha = M.matte(model, img, [M.Prompt.from_points([(100, 150)])], resolution=256, resize="keep_aspect")
    shape = model.calls[0]["image"].shape
    assert shape == (1, 3, 256, 168)  # 200 * 256 / 300 = 170.7 → 168
    assert alpha.shape == (1, 300, 200)
    y, x = divmod(int(alpha[0].argmax()), 200)
    assert abs(x - 100) <= 2 and abs(y - 150) <= 2
    coords = model.calls[0]["coords"][0]
    assert coords.shape == (20,)
    assert torch.allclose(coords[:2], torch.tensor([0.5, 0.5]))


def test_keep_aspect_wide_image(M):
    model = EchoModel()
    alpha = M.matte(model, _images(1, 90, 400), None, resolution=512, resize="keep_aspect")
    assert model.calls[0]["image"].shape == (1, 3, 112, 512)  # 90 * 512 / 400 = 115.2 → 112
    assert alpha.shape == (1, 90, 400) and bool((alpha == 1).all())


def test_resolution_must_be_a_multiple_of_64(M):
    with pytest.raises(M.PromptError, match="resolution 1000 must be a multiple of 64"):
        M.matte(EchoModel(), _images(), None, resolution=1000)


# ------------------------------------------------------------ crop to prompt


def test_crop_focus_pastes_the_box_back_where_it_was(M):
    img = _images(1, 400, 600)
    model = EchoModel()
    box = M.Prompt.from_box(300, 200, 380, 260)
    alpha = M.matte(model, img, [box], resolution=128, focus="crop", margin=0.1)
    assert alpha.shape == (1, 400, 600)
    x1, y1, x2, y2 = _bbox(alpha)
    assert abs(x1 - 300) <= 1 and abs(y1 - 200) <= 1 and abs(x2 - 380) <= 1 and abs(y2 - 260) <= 1
    # the model saw the crop, zoomed: the box fills most of the working image
    m = model.calls[0]["map"][0, 0]
    assert model.calls[0]["image"].shape == (1, 3, 128, 128)
    assert float(m.mean()) > 0.35
    # the image the model saw is the cropped region (square, since stretch)
    cx0, cy0, cx1, cy1 = importlib.import_module(M.__name__ + ".pipeline").crop_box(box, 400, 600, 0.1, True)
    assert cx1 - cx0 == cy1 - cy0
    assert cx0 <= 300 and cy0 <= 200 and cx1 >= 380 and cy1 >= 260
    ref = F.interpolate(img[:, cy0:cy1, cx0:cx1].permute(0, 3, 1, 2), size=(128, 128), mode="bilinear")
    assert torch.allclose(model.calls[0]["image"], ref, atol=1e-6)
    # outside the crop the alpha is zero
    assert cx0 > 0 and float(alpha[0, :, :cx0].abs().max()) == 0.0


def test_crop_focus_with_a_mask_and_keep_aspect(M):
    mask = torch.zeros(240, 320)
    mask[20:60, 250:300] = 1
    model = EchoModel()
    alpha = M.matte(model, _images(1, 240, 320), [M.Prompt.from_mask(mask)], resolution=128,
                    resize="keep_aspect", focus="crop", margin=0.2)
    h, w = model.calls[0]["image"].shape[-2:]
    assert h % 8 == 0 and w % 8 == 0 and max(h, w) == 128
    x1, y1, x2, y2 = _bbox(alpha)
    assert abs(x1 - 250) <= 1 and abs(y1 - 20) <= 1 and abs(x2 - 300) <= 1 and abs(y2 - 60) <= 1
    assert float(alpha[0, 100:, :].max()) == 0.0


def test_crop_focus_around_clicks_near_the_border_stays_inside_the_image(M):
    model = EchoModel()
    alpha = M.matte(model, _images(1, 200, 300), [M.Prompt.from_points([(295, 5)])], resolution=64,
                    focus="crop")
    y, x = divmod(int(alpha[0].argmax()), 300)
    assert abs(x - 295) <= 5 and abs(y - 5) <= 5  # near the border the reflected blur peaks at the edge
    # the crop is square, half the longer side, shifted inside the image (not cut): zero left of it
    assert float(alpha[0, :, :150].max()) == 0.0 and float(alpha[0, 150:, :].max()) == 0.0
    pipeline = importlib.import_module(M.__name__ + ".pipeline")
    assert pipeline.crop_box(M.Prompt.from_points([(295, 5)]), 200, 300, 0.1, True) == (150, 0, 300, 150)
    # the click sits in the crop's top-right corner region, in normalised crop coordinates
    cx, cy = model.calls[0]["coords"][0, :2].tolist()
    assert cx > 0.8 and cy < 0.2


def test_trimap_and_auto_ignore_crop_focus(M):
    t = torch.zeros(64, 96)
    t[10:30, 10:30] = 0.5
    model = EchoModel()
    M.matte(model, _images(1, 64, 96), [M.Prompt.from_trimap(t)], resolution=64, focus="crop")
    full = F.interpolate(_images(1, 64, 96).permute(0, 3, 1, 2), size=(64, 64), mode="bilinear")
    assert torch.allclose(model.calls[0]["image"], full, atol=1e-6)
    assert model.calls[0]["kind"] == "trimap"


# ------------------------------------------------------------ batching rules


def test_no_prompt_means_automatic_for_every_image(M):
    model = EchoModel()
    alpha = M.matte(model, _images(3, 32, 48), None, resolution=64)
    assert alpha.shape == (3, 32, 48)
    assert [c["kind"] for c in model.calls] == ["auto"] * 3
    assert bool((alpha == 1).all())


def test_one_prompt_for_every_image(M):
    model = EchoModel()
    alpha = M.matte(model, _images(2, 64, 64), [M.Prompt.from_box(0, 0, 32, 32)], resolution=64)
    assert alpha.shape == (2, 64, 64)
    assert _bbox(alpha[0]) == _bbox(alpha[1]) == (0, 0, 32, 32)


def test_one_prompt_per_image(M):
    model = EchoModel()
    prompts = [M.Prompt.from_box(0, 0, 32, 32), M.Prompt.from_box(32, 32, 64, 64)]
    alpha = M.matte(model, _images(2, 64, 64), prompts, resolution=64)
    assert _bbox(alpha[0]) == (0, 0, 32, 32) and _bbox(alpha[1]) == (32, 32, 64, 64)


def test_one_image_several_prompts_and_merge(M):
    prompts = [M.Prompt.from_box(0, 0, 16, 16), M.Prompt.from_box(40, 40, 64, 64), M.Prompt.from_box(0, 48, 8, 64)]
    alpha = M.matte(EchoModel(), _images(1, 64, 64), prompts, resolution=64)
    assert alpha.shape == (3, 64, 64)
    assert [_bbox(a) for a in alpha] == [(0, 0, 16, 16), (40, 40, 64, 64), (0, 48, 8, 64)]
    merged = M.matte(EchoModel(), _images(1, 64, 64), prompts, resolution=64, merge_objects=True)
    assert merged.shape == (1, 64, 64)
    assert torch.equal(merged[0], alpha.amax(dim=0))


def test_batch_mismatch_message(M):
    prompts = [M.Prompt.auto(), M.Prompt.auto()]
    with pytest.raises(M.PromptError) as e:
        M.matte(EchoModel(), _images(3, 32, 32), prompts, resolution=64)
    assert str(e.value) == (
        "batch mismatch: 3 images and 2 prompts; give one prompt, one per image, "
        "or one image with several prompts"
    )


def test_chunks_group_items_and_progress_is_reported(M):
    model = EchoModel()
    progress = []
    prompts = [M.Prompt.from_box(0, 0, 10, 10), M.Prompt.from_points([(5, 5)]), M.Prompt.from_box(5, 5, 20, 20)]
    alpha = M.matte(model, _images(3, 32, 32), prompts, resolution=64, chunk_size=4,
                    transparent=[True, False, True], on_item=lambda d, t: progress.append((d, t)))
    assert sorted(c["kind"] for c in model.calls) == ["box", "point"]
    box_call = next(c for c in model.calls if c["kind"] == "box")
    assert box_call["image"].shape[0] == 2 and box_call["transparent"].tolist() == [True, True]
    assert box_call["transparent"].dtype == torch.bool
    assert progress[-1] == (3, 3) and len(progress) == 2
    assert _bbox(alpha[2]) == (5, 5, 20, 20)


def test_on_item_may_interrupt(M):
    class Stop(Exception):
        pass

    model = EchoModel()

    def interrupt(done, total):
        raise Stop

    with pytest.raises(Stop):
        M.matte(model, _images(3, 32, 32), None, resolution=64, on_item=interrupt)
    assert len(model.calls) == 1


# ------------------------------------------------------------ bad images


def test_rgba_image_is_refused_with_the_fix(M):
    with pytest.raises(M.PromptError, match=r"4 channels \(RGBA\); convert it to RGB first"):
        M.matte(EchoModel(), torch.rand(1, 32, 32, 4), None, resolution=64)


def test_nan_image_is_refused(M):
    img = _images(2, 32, 32)
    img[1, 3, 4, 0] = float("nan")
    with pytest.raises(M.PromptError, match="image 1 of the batch contains NaN pixels"):
        M.matte(EchoModel(), img, None, resolution=64)


def test_tiny_image_is_refused(M):
    with pytest.raises(M.PromptError, match=r"the image is 5×40 pixels.*at least 8×8: upscale it"):
        M.matte(EchoModel(), torch.rand(1, 40, 5, 3), None, resolution=64)


def test_prompt_outside_the_image_is_refused_by_matte(M):
    with pytest.raises(M.PromptError, match=r"point 1 \(70, 5\) is outside the 64×32 image"):
        M.matte(EchoModel(), _images(1, 32, 64), [M.Prompt.from_points([(70, 5)])], resolution=64)


def test_points_drawn_on_a_preview_are_scaled_to_the_image(M):
    p = M.Prompt.from_points([(50, 25)], source_size=(50, 100))  # clicked on a half-size preview
    alpha = M.matte(EchoModel(), _images(1, 100, 200), [p], resolution=128)
    y, x = divmod(int(alpha[0].argmax()), 200)
    assert abs(x - 100) <= 2 and abs(y - 50) <= 2
