"""One loader for every family: recognition from tensors, the error for unknown files, companions."""

from __future__ import annotations

import importlib

import pytest
import torch
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def engine(pack):
    return importlib.import_module(f"{pack.__name__}.models")


def test_sdmatte_family_is_recognised_with_every_prompt_kind(engine, golden_dir):
    model = engine.load_matting_model(golden_dir / "litesdmatte_tiny" / "model.safetensors")
    assert model.family == "litesdmatte"
    assert tuple(model.prompt_kinds) == engine.KINDS
    assert model.works_at_input_size is False


def test_unknown_file_lists_every_family_and_its_files(engine, tmp_path):
    path = tmp_path / "classifier.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2), "conv1.weight": torch.zeros(1, 1, 1, 1)}, str(path))
    with pytest.raises(engine.CheckpointError) as caught:
        engine.load_matting_model(path)
    message = str(caught.value)
    assert "classifier.safetensors is not a matting checkpoint" in message
    for family in engine.families():
        assert family.title in message and family.looks_like in message


def test_every_registered_family_describes_itself(engine):
    names = [family.name for family in engine.families()]
    assert len(names) == len(set(names)) and "sdmatte" in names
    for family in engine.families():
        assert family.prompt_kinds and set(family.prompt_kinds) <= set(engine.KINDS), family.name
        for companion in family.companions:
            assert companion.file_names and companion.folder, (family.name, companion)


def test_missing_companion_names_the_file_and_where_it_goes(engine, pack, tmp_path):
    family_module = importlib.import_module(f"{pack.__name__}.models.family")
    companion = engine.Companion("sam", "a Segment Anything checkpoint", ("sam_vit_b_01ec64.pth",), "sams")
    family = family_module.Family(
        name="demo", title="Demo matting", prompt_kinds=("box",), looks_like="demo tensors",
        recognises=lambda shapes: False, load=lambda weights, **_: None, companions=(companion,),
    )
    with pytest.raises(engine.MissingCompanionError) as caught:
        family_module.find_required(family, companion, {}.get)
    message = str(caught.value)
    assert "Demo matting needs a Segment Anything checkpoint" in message
    assert "sam_vit_b_01ec64.pth" in message and "models/sams/" in message
    present = tmp_path / "sam_vit_b_01ec64.pth"
    present.write_bytes(b"x")
    assert family_module.find_required(family, companion, {companion: str(present)}.get) == str(present)
