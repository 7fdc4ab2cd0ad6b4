"""One worker of a batch job: a loaded model and the settings, turning rows into output files.

The same class serves the local run (one instance in this process) and Ray (one instance per actor,
see :mod:`.runner`), so both compute every file with the same code: read the input and its prompt
(:mod:`.inputs`), ``matting.pipeline.matte`` (the one-image pipeline the Matting node runs), then
the cut-outs and PNG bytes of ``matting.outputs`` (what Matte Composite and Save Image produce).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .inputs import ItemError, close_videos, read_input, read_prompt

KIND_NAMES = {"point": "points", "box": "a box", "mask": "a mask", "trimap": "a trimap", "auto": "no prompt"}
HOW_TO_PROMPT = {
    "point": "a .jsonl file with points per input",
    "box": "a .jsonl file with a box per input",
    "mask": "a folder of masks named like the inputs",
    "trimap": "a folder of trimaps named like the inputs (with --prompt-as trimap)",
    "auto": "--prompt auto",
}


def output_names(stem: str, settings: dict) -> list[str]:
    """The files (relative to the output folder) one input produces, the alpha first."""
    names = [f"{stem}.png"]
    if settings.get("rgba"):
        names.append(f"rgba/{stem}.png")
    if settings.get("foreground"):
        names.append(f"foreground/{stem}.png")
    return names


def companion_finder(checkpoint: str, chosen: str | None = None):
    """``find_companion`` without ComfyUI, as the loader node looks: the file given, else the companion's
    usual names beside the checkpoint, then in ComfyUI's model folders next to the checkpoint's folder
    (``models/sams``, ``models/matting``, ``models/sdmatte``)."""
    base = Path(checkpoint).resolve().parent

    def find(companion):
        if chosen:
            return chosen
        for name in companion.file_names:
            for folder in (base, base.parent / companion.folder, base.parent / "matting", base.parent / "sdmatte"):
                if (folder / name).is_file():
                    return str(folder / name)
        return None

    return find


def unsupported_kind_message(family_title: str, kind: str, accepted) -> str:
    takes = " or ".join(KIND_NAMES[k] for k in accepted)
    how = "; ".join(HOW_TO_PROMPT[k] for k in accepted)
    return f"{family_title} cannot matte with {KIND_NAMES.get(kind, kind)}: it takes {takes}. Give --prompt {how}."


def inspect_model(checkpoint: str, companion: str | None = None):
    """The family of a checkpoint, read from its tensor names and shapes without building the model,
    after checking its companion files are there (so a job stops before any worker loads it)."""
    from ..models.checkpoint import read_weights
    from ..models.family import find_required
    from ..models.registry import recognise

    weights = read_weights(checkpoint)
    family = recognise({key: tuple(t.shape) for key, t in weights.tensors.items()}, Path(checkpoint).name)
    del weights
    for needed in family.companions:
        find_required(family, needed, companion_finder(checkpoint, companion))
    return family


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class BatchWorker:
    """Holds one loaded model; ``process(row)`` returns ``{"stem", "error", "files": {name: bytes}}``.

    ``settings`` (a plain dict, so it travels to Ray actors): model, companion, device, precision,
    threads, resolution, resize, focus, margin, transparent, alpha_bits, rgba, foreground.
    """

    def __init__(self, settings: dict):
        import torch

        from ..models import families, load_matting_model

        self.settings = settings
        if settings.get("threads"):
            torch.set_num_threads(int(settings["threads"]))
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[settings["precision"]]
        self.net = load_matting_model(settings["model"], device=resolve_device(settings.get("device")), dtype=dtype,
                                      find_companion=companion_finder(settings["model"], settings.get("companion")))
        self.title = {family.name: family.title for family in families()}.get(self.net.family, self.net.family)
        self.videos: dict = {}

    def pipeline_options(self) -> dict:
        """The keywords of ``matting.pipeline.matte`` this job runs with."""
        s = self.settings
        detail = s.get("detail", "off")
        return {
            "resolution": int(s["resolution"]),
            "resize": s["resize"],
            "focus": s["focus"],
            "margin": float(s["margin"]),
            "transparent": bool(s["transparent"]),
            "at_input_size": bool(getattr(self.net, "works_at_input_size", False)),
            "detail": detail,
            "detail_size": getattr(self.net, "detail_size", None) if detail != "off" else None,
            "prompt_kinds": tuple(getattr(self.net, "prompt_kinds", ())),
        }

    def _model_fn(self, im, prompt_map, coords, kind, trans):
        import torch

        with torch.inference_mode():
            return self.net(im, prompt_map, coords, kind, trans, caption=None).float()

    def process(self, row: dict) -> dict:
        try:
            return {"stem": row["stem"], "error": "", "files": self._files(row)}
        except Exception as error:  # noqa: BLE001 - one input's failure is reported, the job goes on
            return {"stem": row["stem"], "error": describe(error), "files": {}}

    def _files(self, row: dict) -> dict:
        import torch

        from ..matting.outputs import alpha_levels, cutouts, image_levels, png_bytes
        from ..matting.pipeline import matte

        pixels = read_input(row, self.videos)
        height, width = pixels.shape[:2]
        prompt = read_prompt(row, (height, width))
        if prompt.kind not in self.net.prompt_kinds:
            raise ItemError(unsupported_kind_message(self.title, prompt.kind, self.net.prompt_kinds))
        # as ComfyUI's Load Image: uint8 / 255 in float32
        image = torch.from_numpy(pixels.astype(np.float32) / np.float32(255.0))[None]
        with torch.no_grad():
            alpha = matte(self._model_fn, image, prompt, **self.pipeline_options())
        if torch.isnan(alpha).any():
            raise ItemError("the model produced NaN alpha values (a numeric overflow); run with --precision fp32")
        names = output_names(row["stem"], self.settings)
        files = {names[0]: png_bytes(alpha_levels(alpha[0], int(self.settings["alpha_bits"])))}
        if len(names) > 1:
            foreground, rgba = cutouts(image, alpha, estimate_foreground=True)
            if self.settings.get("rgba"):
                files[f"rgba/{row['stem']}.png"] = png_bytes(image_levels(rgba[0]))
            if self.settings.get("foreground"):
                files[f"foreground/{row['stem']}.png"] = png_bytes(image_levels(foreground[0]))
        return files

    def close(self) -> None:
        close_videos(self.videos)


def describe(error: BaseException) -> str:
    """The reason an input failed: the message of the errors that explain themselves (wrong prompt,
    unreadable file, too small), the exception type in front of anything else."""
    from ..matting.errors import PromptError

    if isinstance(error, (ItemError, PromptError)):
        return str(error)
    return f"{type(error).__name__}: {error}"
