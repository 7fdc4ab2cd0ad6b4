"""Peak memory of one forward pass, for the memory tests' child processes (Linux /proc).

``measure_in_child`` runs a test's script in a fresh interpreter with ``PEAK_HELPERS`` at its top,
Python source defining ``forward_peak(run)``: the bytes that ``run()`` adds to the resident size at
its peak. Freed heap pages go back to the OS first (``malloc_trim``), so the baseline counts live
data only: glibc keeps the blocks of an earlier pass (its mmap threshold grows with each freed
block), and a second pass that reuses them would otherwise look half as large as it is.
"""

PEAK_HELPERS = '''
import ctypes as _ctypes
import re as _re


def _status_bytes(field):
    with open("/proc/self/status") as status:
        return int(_re.search(field + r":\\s+(\\d+)", status.read()).group(1)) * 1024


def forward_peak(run):
    """Peak resident bytes that run() adds above the live memory before it."""
    _ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # restart VmHWM from the current resident size
    before = _status_bytes("VmRSS")
    run()
    return _status_bytes("VmHWM") - before
'''


def measure_in_child(pack, script: str, *args, timeout: float = 600) -> dict:
    """Run ``script`` (after ``PEAK_HELPERS``) in a fresh interpreter that imports ``pack`` from the
    folder holding it, and return the JSON object it prints last."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    holder = Path(pack.__path__[0]).parent  # the folder the pack is importable from (tests/conftest.py)
    done = subprocess.run(
        [sys.executable, "-c", PEAK_HELPERS + script, *map(str, args)],
        capture_output=True, text=True, cwd=str(holder), timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
