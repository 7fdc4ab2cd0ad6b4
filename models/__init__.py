"""The SDMatte matting engine: plain torch + diffusers, importable without ComfyUI."""

from .errors import CheckpointError
from .loader import load_matting_model
from .matting_model import KINDS, MattingModel

__all__ = ["CheckpointError", "KINDS", "MattingModel", "load_matting_model"]
