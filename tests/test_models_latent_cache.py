"""A new prompt on the same image reuses the image's encoding, with bit-identical results."""

from __future__ import annotations

import importlib

import pytest
import torch


@pytest.fixture()
def model(pack, golden_dir):
    engine = importlib.import_module(f"{pack.__name__}.models")
    return engine.load_matting_model(golden_dir / "sdmatte_tiny" / "model.safetensors")


def _box(top: int, left: int, height: int = 64, width: int = 96):
    prompt = torch.zeros(1, 1, height, width)
    prompt[..., top : top + 24, left : left + 32] = 1
    coords = torch.tensor([[left / width, top / height, (left + 32) / width, (top + 24) / height]])
    return prompt, coords


def _alpha(model, image, top, left):
    prompt, coords = _box(top, left)
    return model(image, prompt, coords, "box", torch.tensor([False]))


def test_new_prompt_on_the_same_image_skips_its_encoding(model):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 96)
    _alpha(model, image, 8, 8)
    assert model.latent_cache.hits == 0
    warm = _alpha(model, image, 30, 50)
    assert model.latent_cache.hits == 1  # the image; the new box map is encoded
    model.latent_cache.clear()
    cold = _alpha(model, image, 30, 50)
    assert torch.equal(warm, cold)


def test_other_pixels_are_encoded_anew(model):
    torch.manual_seed(1)
    image = torch.rand(1, 3, 64, 96)
    first = _alpha(model, image, 8, 8)
    nudged = image.clone()
    nudged[0, 1, 40, 70] += 1e-3  # one value in one channel
    second = _alpha(model, nudged, 8, 8)
    assert model.latent_cache.hits == 1  # only the identical box map
    assert not torch.equal(first, second)


def test_a_batch_encodes_only_its_new_samples(model):
    torch.manual_seed(2)
    seen, new = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    prompt, coords = _box(8, 8)
    model(seen, prompt, coords, "box", torch.tensor([False]))
    batch = model(torch.cat([new, seen]), prompt.repeat(2, 1, 1, 1), coords.repeat(2, 1), "box", torch.tensor([False, False]))
    assert model.latent_cache.hits == 3  # the seen image and the box map, twice
    model.latent_cache.clear()
    for i, image in enumerate((new, seen)):
        alone = model(image, prompt, coords, "box", torch.tensor([False]))
        assert float((batch[i] - alone[0]).abs().max()) <= 1e-5  # a batch of 2 sums in another order


def test_moving_the_model_empties_the_cache(model):
    _alpha(model, torch.rand(1, 3, 64, 96), 8, 8)
    assert len(model.latent_cache) == 2
    model.to(torch.float64)
    assert len(model.latent_cache) == 0
    image = torch.rand(1, 3, 64, 96, dtype=torch.float64)
    assert _alpha(model, image, 8, 8).dtype == torch.float64


def test_least_recently_used_entries_leave_first(model):
    model.latent_cache.capacity = 3
    images = [torch.rand(1, 3, 64, 96) for _ in range(3)]
    for image in images[:2]:  # entries: box map, image 0, image 1
        _alpha(model, image, 8, 8)
    _alpha(model, images[0], 8, 8)  # image 0 becomes the most recent
    _alpha(model, images[2], 8, 8)  # evicts image 1, the least recent
    hits = model.latent_cache.hits
    _alpha(model, images[0], 8, 8)
    assert model.latent_cache.hits == hits + 2
    _alpha(model, images[1], 8, 8)
    assert model.latent_cache.hits == hits + 3  # image 1 was encoded again (the box map hit)


def test_a_batch_larger_than_the_store_is_encoded_whole(model):
    model.latent_cache.capacity = 2
    images = torch.rand(3, 3, 64, 96)
    prompt, coords = _box(8, 8)
    alphas = model(images, prompt.repeat(3, 1, 1, 1), coords.repeat(3, 1), "box", torch.tensor([False] * 3))
    assert alphas.shape == (3, 1, 64, 96) and len(model.latent_cache) == 2
    model.latent_cache.clear()
    alone = model(images[:1], prompt, coords, "box", torch.tensor([False]))
    assert float((alphas[0] - alone[0]).abs().max()) <= 1e-5  # a batch of 3 sums in another order
