"""The matting engines: one folder per family, plain torch, importable without ComfyUI."""

from .errors import CheckpointError
from .family import KINDS, Companion, MissingCompanionError
from .loader import load_matting_model
from .registry import describe_families, families

__all__ = [
    "CheckpointError",
    "Companion",
    "KINDS",
    "MattingModel",
    "MissingCompanionError",
    "describe_families",
    "families",
    "load_matting_model",
]


def __getattr__(name: str):
    if name == "MattingModel":  # SDMatte's module: imports diffusers, so only when asked for
        from .sdmatte.matting_model import MattingModel  # noqa: PLC0415

        return MattingModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
