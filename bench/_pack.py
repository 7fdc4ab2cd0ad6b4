"""The pack's ``models`` imported from this checkout, for the benchmark scripts (any folder name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def import_engine():
    """Import the pack's ``models`` as package ``promptmatte`` (its submodules as ``promptmatte.*``)."""
    if "promptmatte" in sys.modules:
        return sys.modules["promptmatte"]
    spec = importlib.util.spec_from_file_location(
        "promptmatte", REPO / "models" / "__init__.py", submodule_search_locations=[str(REPO / "models")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["promptmatte"] = module
    spec.loader.exec_module(module)
    return module


def run_child(script: str, *args) -> dict:
    """Run ``script`` again in a fresh process (so peaks do not mix) and return the JSON object it
    prints last; its error output ends the benchmark when it fails."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
