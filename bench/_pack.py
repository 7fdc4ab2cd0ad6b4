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


def import_pack(name: str = "PromptMatte"):
    """Import the whole pack (``matting``, ``models``...) as package ``name`` from this checkout,
    whatever its folder is called; registered in ``sys.modules``, with no ``sys.path`` edit."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
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


def memory_bytes(field: str) -> int:
    """This process's ``field`` of /proc/self/status in bytes: "VmRSS" (resident now) or "VmHWM" (the
    peak since the process started or since :func:`restart_peak`). Not ru_maxrss: Linux carries it
    across fork and exec, so a child would report at least its parent's size."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))


def restart_peak() -> None:
    """Restart VmHWM from the live memory, so the next peak is one pass's alone: freed heap pages go
    back to the OS first (glibc keeps an earlier pass's blocks, and a pass that reuses them would
    look smaller than it is; tests/peak_memory.py measures the same way)."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
