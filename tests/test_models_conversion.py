"""Weight processing: .pth -> verified .safetensors, and SD2 -> SDMatte training initialisation."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from golden_cases import golden_case
from tiny_models import tiny_sd2_state_dict


@pytest.fixture(scope="module")
def engine(pack):
    return importlib.import_module(f"{pack.__name__}.models")


@pytest.fixture(scope="module")
def conversion(engine):
    return importlib.import_module(f"{engine.__name__}.sdmatte.conversion")


@pytest.fixture(scope="module")
def released_pth(golden_dir, tmp_path_factory):
    """A file in the released layout: detectron2 checkpoint with the weights under "model"."""
    path = tmp_path_factory.mktemp("release") / "LiteSDMatte.pth"
    torch.save({"model": load_file(str(golden_dir / "litesdmatte_tiny" / "model.safetensors")), "iteration": 7}, path)
    return path


def _case(golden_dir, name="litesdmatte_tiny"):
    return golden_case(golden_dir / name, "point_mask.trans1")


def test_convert_round_trip_is_exact(conversion, engine, released_pth, golden_dir, tmp_path):
    out = tmp_path / "LiteSDMatte.safetensors"
    metadata = conversion.convert_checkpoint(released_pth, out)
    original = load_file(str(golden_dir / "litesdmatte_tiny" / "model.safetensors"))
    converted = load_file(str(out))
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)
    with safe_open(str(out), "pt") as f:
        header = f.metadata()
    assert header["family"] == metadata["family"] == "litesdmatte"
    assert json.loads(header["architecture"])["unet"]["block_out_channels"] == [64, 64]
    args, expected = _case(golden_dir)
    assert float((engine.load_matting_model(out)(*args)[0, 0] - expected).abs().max()) <= 2e-4


def test_convert_to_half_precision(conversion, engine, released_pth, golden_dir, tmp_path):
    out = tmp_path / "LiteSDMatte_fp16.safetensors"
    conversion.convert_checkpoint(released_pth, out, torch.float16)
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["dtype"] == "float16"
        assert f.get_tensor("unet.conv_in.weight").dtype == torch.float16
        vae_key = next(k for k in f.keys() if k.startswith("vae."))
        assert f.get_tensor(vae_key).dtype == torch.float32  # the autoencoder always runs in fp32
    model = engine.load_matting_model(out)  # half file, loaded as stored
    args, expected = _case(golden_dir)
    assert float((model(*args)[0, 0] - expected).abs().mean()) < 0.02
    assert out.stat().st_size < released_pth.stat().st_size * 0.7


def test_convert_never_leaves_a_partial_file(conversion, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError):
        conversion.convert_checkpoint(broken, tmp_path / "out.safetensors")
    assert list(tmp_path.iterdir()) == [broken]


def test_init_from_sd2_matches_the_authors_recipe(conversion, engine, tmp_path):
    sd2 = tiny_sd2_state_dict(seed=3)
    source = tmp_path / "sd2.safetensors"
    save_file(sd2, str(source))
    out = tmp_path / "sdmatte_init.safetensors"
    metadata = conversion.init_from_sd2(source, out)
    assert metadata["family"] == "sdmatte"
    init = load_file(str(out))

    kernel, bias = sd2["unet.conv_in.weight"], sd2["unet.conv_in.bias"]
    assert init["unet.conv_in.weight"].shape == (64, 8, 3, 3)
    # image ++ image through the widened conv gives the original response
    x = torch.randn(1, 4, 8, 8)
    widened = torch.nn.functional.conv2d(torch.cat([x, x], 1), init["unet.conv_in.weight"], init["unet.conv_in.bias"], padding=1)
    original = torch.nn.functional.conv2d(x, kernel, bias, padding=1)
    assert torch.allclose(widened, original, atol=1e-5)
    aux_w, aux_b = init["unet.aux_conv_in.weight"], init["unet.aux_conv_in.bias"]
    assert aux_w.shape == (1024, 4, 3, 3)  # the mid block's cross-attention width
    assert torch.equal(aux_w[:64], kernel) and torch.equal(aux_b[:64], bias)
    assert not aux_w[64:].any() and not aux_b[64:].any()
    for name, inputs in (("point_embedding", 1680), ("bbox_embedding", 1280)):
        assert init[f"unet.{name}.linear_1.weight"].shape == (256, inputs)
        for key in ("linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"):
            assert not init[f"unet.{name}.{key}"].any()
    untouched = [k for k in sd2 if k not in ("unet.conv_in.weight",)]
    assert all(torch.equal(init[k], sd2[k]) for k in untouched)

    # the result is a loadable, runnable matting model
    model = engine.load_matting_model(out)
    alpha = model(torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), "auto", torch.tensor([False]))
    assert alpha.shape == (1, 1, 64, 64)


def test_init_from_sd2_refuses_matting_weights(conversion, golden_dir, tmp_path):
    with pytest.raises(ValueError, match="already an SDMatte UNet"):
        conversion.init_from_sd2(golden_dir / "sdmatte_tiny" / "model.safetensors", tmp_path / "x.safetensors")


def _cli(pack, *args):
    holder = str(__import__("pathlib").Path(pack.__file__).parent.parent)
    return subprocess.run(
        [sys.executable, "-m", f"{pack.__name__}.models", *map(str, args)],
        cwd=holder, capture_output=True, text=True, timeout=300,
    )


def test_cli_convert_and_inspect(pack, released_pth, tmp_path):
    out = tmp_path / "cli.safetensors"
    done = _cli(pack, "convert", released_pth, out, "--dtype", "bf16")
    assert done.returncode == 0, done.stderr
    assert "round trip verified" in done.stdout
    shown = _cli(pack, "inspect", out)
    assert shown.returncode == 0 and json.loads(shown.stdout)["family"] == "litesdmatte"


def test_cli_reports_bad_files_without_a_traceback(pack, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    done = _cli(pack, "inspect", bad)
    assert done.returncode == 2
    assert "error:" in done.stderr and "Traceback" not in done.stderr
