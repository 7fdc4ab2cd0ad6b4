"""Tiny checkpoints of the families beside SDMatte, written where a ComfyUI user puts the real ones.

Each is its family's golden checkpoint (random weights in a reduced configuration, the released
file layout), rebuilt from the manifest under tests/golden/<family>/:

- MAM: ``models/matting/mam_tiny.pth`` and its SAM as ``models/sams/sam_vit_b_01ec64.pth`` (the
  name the loader looks for by default);
- SIM: ``models/matting/ckpt_best.pth`` with ``classifier_resnet50_best.pth.tar`` beside it;
- SEMat: ``models/matting/semat_tiny.pth``;
- AIM: ``models/matting/aim_tiny.pth`` (when its golden fixtures are there).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
CHECKPOINTS = {"mam": "mam_tiny.pth", "sim": "ckpt_best.pth", "semat": "semat_tiny.pth", "aim": "aim_tiny.pth"}


def _mam(models: Path) -> None:
    from mam_golden import write_checkpoints

    with tempfile.TemporaryDirectory() as scratch:
        files = write_checkpoints(GOLDEN / "mam" / "weights_manifest.json", Path(scratch))
        shutil.copy(files["mam_tiny.pth"], models / "matting" / CHECKPOINTS["mam"])
        shutil.copy(files["sam_tiny.pth"], models / "sams" / "sam_vit_b_01ec64.pth")


def _sim(models: Path) -> None:
    from sim_golden import write_checkpoints

    write_checkpoints(models / "matting")


def _semat(models: Path) -> None:
    from semat_golden import write_checkpoint

    write_checkpoint(GOLDEN / "semat" / "manifest_sam.json", models / "matting" / CHECKPOINTS["semat"])


def _aim(models: Path) -> None:
    aim_golden = importlib.import_module("aim_golden")
    aim_golden.write_checkpoint(models / "matting" / CHECKPOINTS["aim"])


WRITERS = {"mam": _mam, "sim": _sim, "semat": _semat, "aim": _aim}


def available() -> list[str]:
    """The families whose golden fixtures (and writer) are in this checkout."""
    here = Path(__file__).resolve().parent
    return [family for family in WRITERS if (here / f"{family}_golden.py").is_file() and (GOLDEN / family).is_dir()]


def install(models_dir: Path, families: list[str] | None = None) -> dict[str, str]:
    """Write the tiny checkpoints into ``models_dir`` (ComfyUI's models/); family -> listed name."""
    models_dir = Path(models_dir)
    (models_dir / "matting").mkdir(parents=True, exist_ok=True)
    (models_dir / "sams").mkdir(parents=True, exist_ok=True)
    names = {}
    for family in families or available():
        WRITERS[family](models_dir)
        names[family] = CHECKPOINTS[family]
    return names
