"""The chain weights (tests/chain_weights.py) load the way the real packs and ComfyUI load them.

Each check runs the loader a user's ComfyUI runs: segment_anything's ``build_sam_vit_b`` (strict),
storyicon's vendored GroundingDINO and kijai's SAM 2 loader (in a child process with the pack on
PYTHONPATH, exactly as published in ../shared/thirdparty), ComfyUI's ``load_checkpoint_guess_config``.
The weights come from the per-machine cache (about 90 s to write once, 3.6 GB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chain_weights
from comfy_host import REPO

THIRDPARTY = (REPO.parent / "shared" / "thirdparty").resolve()
STORYICON = THIRDPARTY / "comfyui_segment_anything"
KIJAI = THIRDPARTY / "ComfyUI-segment-anything-2"
PIP_HINT = "/work/main/.venv/bin/pip install segment_anything timm addict yapf pyyaml iopath"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def chain_files() -> dict[str, Path]:
    return chain_weights.ensure()


def _pack(path: Path) -> Path:
    if not path.is_dir():
        pytest.fail(f"third-party pack not found at {path} (see ../shared/thirdparty/README.md)", pytrace=False)
    return path


def _child(script: str, pythonpath: list[Path], timeout: float, cwd: Path | None = None) -> dict:
    """Run ``script`` in a fresh interpreter of this venv; it prints one JSON line prefixed RESULT."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=str(cwd) if cwd else None,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"child exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}", pytrace=False)
    return json.loads(lines[-1][len("RESULT "):])


def test_cache_holds_every_file_and_is_keyed_by_the_generator(chain_files):
    cache = chain_weights.cache_dir()
    manifest = chain_weights.manifest()
    assert manifest["generator_sha256"] == chain_weights.generator_hash()
    assert cache.name == chain_weights.generator_hash()[:16]
    for name in chain_weights.ENTRIES:
        path = chain_files[name]
        assert path.parent == cache and path.exists(), name
        assert manifest["files"][name]["bytes"] > 0
    bert = chain_files[chain_weights.BERT_DIR]
    assert {"config.json", "vocab.txt", "model.safetensors"} <= {p.name for p in bert.iterdir()}
    # the second call finds the cache and writes nothing
    assert chain_weights.ensure() == chain_files


def test_an_interrupted_generation_leaves_no_cache(tmp_path, monkeypatch):
    def write_then_die(folder: Path) -> None:
        (folder / "partial.bin").write_bytes(b"x" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(chain_weights, "WRITERS", {"partial.bin": write_then_die})
    with pytest.raises(KeyboardInterrupt):
        chain_weights.ensure(tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the final folder nor the temporary one


def test_install_links_the_cache_where_the_packs_look(chain_files, tmp_path):
    models = tmp_path / "models"
    links = chain_weights.install(models, chain_files)
    expected = {
        "sams/sam_vit_b_01ec64.pth",
        "grounding-dino/groundingdino_swint_ogc.pth",
        "grounding-dino/GroundingDINO_SwinT_OGC.cfg.py",
        "bert-base-uncased",
        "sam2/sam2.1_hiera_tiny.safetensors",
        "checkpoints/sd-v1-5-inpainting.safetensors",
    }
    assert {str(p.relative_to(models)) for p in links.values()} == expected
    for name, link in links.items():
        assert link.is_symlink() and link.resolve() == chain_files[name].resolve()
    assert chain_weights.install(models, chain_files) == links  # idempotent
    (models / "sam2" / "sam2.1_hiera_tiny.safetensors").unlink()
    (models / "sam2" / "sam2.1_hiera_tiny.safetensors").write_bytes(b"someone's real file")
    with pytest.raises(FileExistsError, match="sam2.1_hiera_tiny"):
        chain_weights.install(models, chain_files)


def test_sam_vit_b_loads_strictly_in_segment_anything(chain_files):
    try:
        import segment_anything
    except ImportError:
        pytest.fail(f"segment_anything (storyicon's requirement) is not installed: {PIP_HINT}", pytrace=False)
    import torch

    sam = segment_anything.build_sam_vit_b(checkpoint=str(chain_files[chain_weights.SAM_FILE]))  # strict load
    state = sam.state_dict()
    assert sum(t.numel() for t in state.values()) == chain_weights.sam_vit_b_layout().numel()
    assert all(torch.isfinite(t).all() for t in state.values())


def test_grounding_dino_loads_in_storyicons_pack_and_finds_the_shaped_queries(chain_files):
    """With transformers 4.x (where the pack's text encoder works) the whole model is built and
    loaded as the pack does, and a forward pass scores exactly DINO_FOUND_QUERIES above the pack's
    default threshold 0.3; with transformers 5 the backbone, transformer and BERT parts are compared
    with the pack's own modules. The bert-base-uncased folder loads in transformers either way."""
    pack = _pack(STORYICON)
    script = f"""
        import json, torch, transformers
        from transformers import AutoTokenizer, BertModel
        from local_groundingdino.util.slconfig import SLConfig
        folder = {str(chain_files[chain_weights.DINO_FILE].parent)!r}
        args = SLConfig.fromfile(folder + "/{chain_weights.DINO_CONFIG_FILE}")
        args.text_encoder_type = folder + "/{chain_weights.BERT_DIR}"
        sd = torch.load(folder + "/{chain_weights.DINO_FILE}", weights_only=True)["model"]
        out = {{"transformers": transformers.__version__}}
        tok = AutoTokenizer.from_pretrained(args.text_encoder_type)
        out["unknown_words"] = [w for w in ("person", "subject", "hair", "cat", "dog")
                                if tok.convert_tokens_to_ids(w) == tok.unk_token_id]
        bert, info = BertModel.from_pretrained(args.text_encoder_type, output_loading_info=True)
        out["bert_loading"] = {{k: list(v) for k, v in info.items() if v}}
        if int(transformers.__version__.split(".")[0]) < 5:
            # the pack's own loader path: build, load_state_dict(strict=False) (a shape mismatch
            # raises), then one forward pass on a small input (the scores do not depend on its size)
            from local_groundingdino.models import build_model
            from local_groundingdino.util.utils import clean_state_dict
            model = build_model(args)
            built = {{k: v.clone() for k, v in model.state_dict().items() if not v.is_floating_point()}}
            out["index_buffers_differ"] = [k for k, v in built.items() if k not in sd or not torch.equal(v, sd[k])]
            keys = model.load_state_dict(clean_state_dict(sd), strict=False)
            out["missing"], out["unexpected"] = list(keys.missing_keys), list(keys.unexpected_keys)
            model.eval()
            torch.manual_seed(0)
            with torch.no_grad():
                res = model(torch.randn(1, 3, 256, 320), captions=["person."])
            scores = res["pred_logits"].sigmoid()[0].max(dim=1)[0]
            out["found"] = sorted(int(i) for i in torch.nonzero(scores > 0.3).flatten())
            out["found_scores"] = [round(float(s), 4) for s in scores[scores > 0.3]]
            out["max_other"] = float(scores[scores <= 0.3].max())
            out["boxes_finite"] = bool(torch.isfinite(res["pred_boxes"]).all())
        else:
            # transformers 5 removed BertModel methods the pack's text encoder binds at build time,
            # so the whole model cannot be built here: compare its parts with the pack's modules.
            from local_groundingdino.models.GroundingDINO.backbone import build_backbone
            from local_groundingdino.models.GroundingDINO.transformer import build_transformer
            shapes = {{k: list(v.shape) for k, v in sd.items()}}
            out["missing"], out["unexpected"] = [], []
            def compare(prefix, module, ignore=()):
                mine = {{k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)}}
                ref = {{k: list(v.shape) for k, v in module.state_dict().items()}}
                out["missing"] += [prefix + k for k in ref if mine.get(k) != ref[k]]
                out["unexpected"] += [prefix + k for k in mine if k not in ref and not k.startswith(ignore)]
            backbone = build_backbone(args)[0]
            out["index_buffers_differ"] = [k for k, v in backbone.state_dict().items()
                                           if not v.is_floating_point() and not torch.equal(v, sd["backbone.0." + k])]
            compare("backbone.0.", backbone)
            compare("bert.", bert)
            # the box heads are attached to the transformer by the GroundingDINO model itself
            compare("transformer.", build_transformer(args), ("decoder.bbox_embed.", "enc_out_bbox_embed."))
        print("RESULT " + json.dumps(out))
    """
    out = _child(script, [pack], timeout=240)
    assert out["unknown_words"] == [] and out["bert_loading"] == {}, out
    assert out["missing"] == [] and out["unexpected"] == [], out
    assert out["index_buffers_differ"] == [], "Swin's relative_position_index must hold the real indices"
    if int(out["transformers"].split(".")[0]) < 5:
        assert out["found"] == list(chain_weights.DINO_FOUND_QUERIES), out
        assert all(0.8 < s < 0.95 for s in out["found_scores"]), out
        assert out["max_other"] < 0.15 and out["boxes_finite"], out


def test_sam2_loads_in_kijais_pack_and_a_click_gives_a_mask(chain_files, comfy_path):
    """kijai's ``load_model`` (strict ``load_state_dict``) on the cached file, then one click."""
    _pack(KIJAI)
    script = f"""
        import sys
        sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI's model_management reads its CLI flags on import
        import comfy.options
        comfy.options.enable_args_parsing()
        import importlib, json, numpy as np, torch
        load_model = importlib.import_module("{KIJAI.name}.load_model")
        predictor = load_model.load_model({str(chain_files[chain_weights.SAM2_FILE])!r},
                                          {str(KIJAI / "sam2_configs" / "sam2.1_hiera_t.yaml")!r},
                                          "single_image", torch.float32, torch.device("cpu"))
        image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
        predictor.set_image(image)
        masks, scores, _ = predictor.predict(point_coords=np.array([[64, 48]]), point_labels=np.array([1]),
                                             multimask_output=True)
        print("RESULT " + json.dumps({{"shape": list(masks.shape), "dtype": str(masks.dtype),
                                      "fraction": [float(m.mean()) for m in masks],
                                      "finite": bool(np.isfinite(scores).all())}}))
    """
    out = _child(script, [comfy_path, THIRDPARTY], timeout=240, cwd=comfy_path)
    assert out["shape"] == [3, 96, 128] and out["finite"], out
    assert max(out["fraction"]) > 0, "SAM 2 blanked every mask (object score head)"


def test_sd15_inpainting_checkpoint_is_what_comfyui_recognises(chain_files, comfy_path):
    """ComfyUI's CheckpointLoaderSimple path (``load_checkpoint_guess_config``) in a child process
    (it peaks at about 7 GB, returned to the system when the child ends)."""
    script = f"""
        import sys
        sys.argv = [sys.argv[0], "--cpu"]
        import comfy.options
        comfy.options.enable_args_parsing()
        import json, logging
        # what ComfyUI logs at WARNING level when a checkpoint's keys do not match its model
        KEY_WARNINGS = ("clip missing", "unet missing", "unet unexpected", "Missing VAE keys")
        warnings = []
        class Keep(logging.Handler):
            def emit(self, record):
                warnings.append(record.getMessage())
        logging.getLogger().addHandler(Keep(logging.WARNING))
        import comfy.sd, comfy.supported_models
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
            {str(chain_files[chain_weights.SD15_INPAINT_FILE])!r}, output_vae=True, output_clip=True)
        config = model.model.model_config
        print("RESULT " + json.dumps({{
            "config": type(config).__name__, "base": type(model.model).__name__,
            "inpaint": config.inpaint_model(), "in_channels": config.unet_config["in_channels"],
            "concat_keys": list(model.model.concat_keys), "clip": clip is not None, "vae": vae is not None,
            "warnings": [w for w in warnings if w.startswith(KEY_WARNINGS)]}}))
    """
    out = _child(script, [comfy_path], timeout=240, cwd=comfy_path)
    assert out["config"] == "SD15" and out["base"] == "BaseModel", out
    assert out["inpaint"] and out["in_channels"] == 9 and out["concat_keys"] == ["mask", "masked_image"], out
    assert out["clip"] and out["vae"] and out["warnings"] == [], out
