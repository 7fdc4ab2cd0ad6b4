"""The engine's memory savings keep the values: banded autoencoder, streamed memory-mapped weights."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors import safe_open
from safetensors.torch import save_file

from peak_memory import measure_in_child


@pytest.fixture(scope="module")
def modules(pack):
    sdmatte = {name: importlib.import_module(f"{pack.__name__}.models.sdmatte.{name}") for name in ("architecture", "autoencoder", "banded")}
    return {**sdmatte, "residency": importlib.import_module(f"{pack.__name__}.models.residency")}


def _random_kl_vae(modules, widths=(32, 64, 64, 64)):
    arch = modules["architecture"].KLAutoencoderArchitecture(block_out_channels=widths, layers_per_block=2, latent_channels=4)
    torch.manual_seed(0)
    vae = modules["autoencoder"].build_autoencoder(arch).eval()
    with torch.no_grad():  # away from the default initialisation, so every layer matters
        for parameter in vae.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return vae


# The decoder's last upsampled map is wider than the last stage (which a banded decoder never
# stores whole): 64 channels read by a block that halves them to 32 (computed once, into that
# block's memory), or 96 read by a block that makes 64 of them (recomputed band by band).
LAST_MAP_CASES = {"split": (32, 64, 64, 64), "recomputed": (64, 96, 96, 96)}


@pytest.mark.parametrize("widths", list(LAST_MAP_CASES.values()), ids=list(LAST_MAP_CASES))
@pytest.mark.parametrize("band_elements", [1 << 23, 3000], ids=["one-band", "many-bands"])
@pytest.mark.parametrize("height, width", [(64, 64), (96, 40), (128, 200)])
def test_banded_autoencoder_equals_the_stock_one(modules, monkeypatch, band_elements, height, width, widths):
    """Same latents and decoded images as diffusers' own AutoencoderKL.encode / decode, batch of 2."""
    monkeypatch.setattr(modules["banded"], "BAND_ELEMENTS", band_elements)
    vae = _random_kl_vae(modules, widths)
    pixels = torch.rand(2, 3, height, width)
    latent = torch.randn(2, 4, height // 8, width // 8)
    with torch.inference_mode():
        stock_latent = AutoencoderKL.encode(vae, pixels * 2 - 1).latent_dist.mean * vae.config.scaling_factor
        stock_rgb = AutoencoderKL.decode(vae, latent / vae.config.scaling_factor).sample
        ours_latent = vae.encode_scaled(pixels)
        ours_rgb = vae.decode_rgb(latent)
    assert ours_latent.shape == stock_latent.shape and ours_rgb.shape == stock_rgb.shape == (2, 3, height, width)
    assert float((ours_latent - stock_latent).abs().max()) <= 1e-5 * float(stock_latent.abs().max())
    assert float((ours_rgb - stock_rgb).abs().max()) <= 1e-5 * float(stock_rgb.abs().max())


_PEAK_SCRIPT = textwrap.dedent(
    """
    import importlib, json, torch
    architecture = importlib.import_module("{pack}.models.sdmatte.architecture")
    autoencoder = importlib.import_module("{pack}.models.sdmatte.autoencoder")
    banded = importlib.import_module("{pack}.models.sdmatte.banded")
    banded.BAND_ELEMENTS = 1 << 18  # bands of 1 MB: what remains is the maps themselves
    arch = architecture.KLAutoencoderArchitecture(block_out_channels=(64, 128, 128, 128), layers_per_block=2, latent_channels=4)
    vae = autoencoder.build_autoencoder(arch).eval()
    decoders = {{
        "stock": lambda z: vae.decoder(vae.post_quant_conv(z)),
        "banded": lambda z: vae.decode_rgb(z * vae.config.scaling_factor),
    }}
    extra = {{}}
    with torch.inference_mode():
        for decode in decoders.values():  # warm-up: allocator arenas and kernel caches are not the decoder's
            decode(torch.randn(1, 4, 16, 16))
        latent = torch.randn(1, 4, 64, 64)
        for name, decode in decoders.items():
            # the least of three: allocator arenas add tens of MB now and then
            extra[name] = min(forward_peak(lambda: decode(latent)) for _ in range(3))
    print(json.dumps(extra))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: Linux only")
def test_banded_decoder_needs_far_less_memory(pack):
    """Decoding a 512x512 matte: the banded decoder's extra peak memory is under half the stock one's."""
    extra = measure_in_child(pack, _PEAK_SCRIPT.format(pack=pack.__name__))
    # stock: several 64-channel 512x512 maps (64 MB each) alive at once, plus the library's copies;
    # banded: the last stage's input at 256x256 (32 MB), two 64-channel maps and the bands
    assert extra["banded"] < 0.5 * extra["stock"], extra


def _resident_file_bytes() -> int:
    return int(re.search(r"RssFile:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and madvise: Linux only")
def test_released_weight_pages_leave_the_process_and_keep_their_values(modules, tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"a": torch.arange(16 << 20, dtype=torch.float32), "b": torch.ones(4 << 20)}, str(path))
    with safe_open(str(path), framework="pt") as f:
        a, b = f.get_tensor("a"), f.get_tensor("b")
    expected_sum = float(a.double().sum())
    assert float(a.double().sum()) == expected_sum  # every page of a (64 MB) is now resident
    before = _resident_file_bytes()
    released = modules["residency"].release_mapped_pages([a])
    after = _resident_file_bytes()
    assert released >= 63 << 20
    assert before - after >= 60 << 20, (before, after)
    assert float(a.double().sum()) == expected_sum  # read back from the page cache, unchanged
    assert float(b.sum()) == 4 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and madvise: Linux only")
def test_modified_or_ordinary_memory_is_never_released(modules, tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(4 << 20)}, str(path))
    with safe_open(str(path), framework="pt") as f:
        w = f.get_tensor("w")
    w[123] = 7.0  # a copy-on-write page: the file no longer holds this value
    ordinary = torch.full((4 << 20,), 3.0)
    assert modules["residency"].release_mapped_pages([w, ordinary]) == 0
    assert float(w[123]) == 7.0 and float(ordinary.sum()) == 3.0 * (4 << 20)


def test_forward_streams_unet_weights_and_repeats_exactly(pack, golden_dir):
    """Two calls on a memory-mapped model give identical alphas (pages re-read between them)."""
    engine = importlib.import_module(f"{pack.__name__}.models")
    model = engine.load_matting_model(golden_dir / "sdmatte_tiny" / "model.safetensors")
    image = torch.rand(1, 3, 64, 96)
    prompt = torch.zeros(1, 1, 64, 96)
    prompt[..., 16:48, 24:72] = 1
    args = (image, prompt, torch.tensor([[0.25, 0.25, 0.75, 0.75]]), "box", torch.tensor([False]))
    first = model(*args)
    second = model(*args)
    assert torch.equal(first, second)


@pytest.mark.parametrize("kind", ["point", "box", "mask", "trimap", "auto"])
@pytest.mark.parametrize("family", ["sdmatte_tiny", "litesdmatte_tiny"])
def test_a_whole_pass_stays_on_the_models_device(pack, golden_dir, family, kind):
    """No step creates a tensor on the CPU next to the model's device (a crash on a GPU), and no
    step needs a value read back from it to go on (the meta device holds no values).

    This machine has no GPU; the meta device stands in for any device that is not the CPU.
    Point, box and mask prompts bias the self-attention; trimap and automatic ones do not.
    """
    engine = importlib.import_module(f"{pack.__name__}.models")
    model = engine.load_matting_model(golden_dir / family / "model.safetensors").to("meta")
    meta = {"device": "meta"}
    with torch.inference_mode():
        alpha = model(
            torch.rand(2, 3, 64, 96, **meta),
            torch.rand(2, 1, 64, 96, **meta),
            torch.rand(2, 20 if kind == "point" else 4, **meta),
            kind,
            torch.zeros(2, dtype=torch.bool, **meta),
        )
    assert alpha.device.type == "meta" and alpha.shape == (2, 1, 64, 96)


@pytest.mark.parametrize("widths", list(LAST_MAP_CASES.values()), ids=list(LAST_MAP_CASES))
def test_banded_autoencoder_stays_on_the_maps_device(modules, widths):
    """Every banded path, both ways of handling the last upsampled map included, runs on a device that is not the CPU."""
    vae = _random_kl_vae(modules, widths).to("meta")
    with torch.inference_mode():
        latent = vae.encode_scaled(torch.rand(1, 3, 64, 96, device="meta"))
        rgb = vae.decode_rgb(torch.randn(1, 4, 8, 12, device="meta"))
    assert latent.device.type == rgb.device.type == "meta"
    assert latent.shape == (1, 4, 8, 12) and rgb.shape == (1, 3, 64, 96)
