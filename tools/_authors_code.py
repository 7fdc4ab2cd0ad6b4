"""Shared by the golden generators: the authors' research code is imported from PYTHONPATH.

Their repositories import their own modules as top-level packages (``networks``, ``modeling``,
``segment_anything``...). The generators do not edit ``sys.path`` for them: the command that runs a
generator names the folders in PYTHONPATH, and this check says which ones when they are missing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def require_importable(modules: list[str], folders: list[Path]) -> None:
    """Stop, naming the PYTHONPATH to set, unless every one of ``modules`` can be imported."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        wanted = os.pathsep.join(str(Path(folder).resolve()) for folder in folders)
        raise SystemExit(
            f"the authors' modules {', '.join(missing)} are not importable; run this generator with "
            f"PYTHONPATH={wanted}"
        )
