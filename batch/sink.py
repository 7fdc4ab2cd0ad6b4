"""The output folder of a batch job: what is done, the settings it was made with, the failures.

- An input is *done* when every file it produces is there under its final name. Files are only
  ever written whole (``matting.outputs.write_atomic``), so a run killed at any moment leaves done
  inputs, inputs not started, and hidden ``.*.part`` leftovers, which the next run removes before it
  redoes those inputs (and any input with only some of its files).
- ``batch.json`` records the settings that decide the pixels; a rerun with other settings is
  refused rather than mixing outputs.
- ``failures.jsonl``: one line per input that failed in this run (``stem``, ``input``, ``reason``),
  flushed as it happens, so a long job shows its failures while it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..matting.outputs import write_atomic
from .inputs import JobError
from .work import output_names

SETTINGS_FILE = "batch.json"
FAILURES_FILE = "failures.jsonl"
# Settings that change the files' bytes (what is written, not whether: --rgba may be added later).
PIXEL_SETTINGS = ("model", "model_bytes", "companion", "precision", "resolution", "resize", "focus", "margin",
                  "transparent", "alpha_bits", "input", "prompt", "prompt_as")


class OutputFolder:
    def __init__(self, folder, settings: dict):
        self.folder = Path(folder)
        self.settings = settings
        self.written = 0
        self.failed: list[dict] = []
        self._failures = None

    def open(self) -> None:
        """Create the folder, check it was made with these settings, remove leftovers of a killed run,
        start this run's failures file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for sub in ("rgba", "foreground"):
            if self.settings.get(sub):
                (self.folder / sub).mkdir(exist_ok=True)
        self._check_settings()
        for sub in ("", "rgba", "foreground"):
            folder = self.folder / sub
            if folder.is_dir():
                for leftover in folder.glob(".*.part"):
                    leftover.unlink()
        self._failures = open(self.folder / FAILURES_FILE, "w", encoding="utf-8")

    def _check_settings(self) -> None:
        recorded = {k: self.settings.get(k) for k in PIXEL_SETTINGS}
        path = self.folder / SETTINGS_FILE
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict) and old != recorded:
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in recorded.items() if old.get(k) != v)
                raise JobError(f"{self.folder} holds outputs made with other settings ({diff}); give another --out "
                               "folder, or delete the old outputs to start again")
        write_atomic(path, (json.dumps(recorded, indent=1) + "\n").encode())

    def is_done(self, stem: str) -> bool:
        return all((self.folder / name).is_file() for name in output_names(stem, self.settings))

    def accept(self, result: dict, row: dict) -> None:
        """Write one worker result: its files, or its failure."""
        if result["error"]:
            record = {"stem": result["stem"], "input": _input_name(row), "reason": result["error"]}
            self.failed.append(record)
            self._failures.write(json.dumps(record) + "\n")
            self._failures.flush()
            os.fsync(self._failures.fileno())
            return
        # the alpha last: an input counts as done only when all its files are there
        for name, data in sorted(result["files"].items(), key=lambda item: "/" not in item[0]):
            write_atomic(self.folder / name, data)
        self.written += 1

    def close(self) -> None:
        if self._failures is not None:
            self._failures.close()
            self._failures = None


def _input_name(row: dict) -> str:
    return row["source"] if int(row["frame"]) < 0 else f"{row['source']} frame {row['frame']}"
