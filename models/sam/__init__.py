"""Segment Anything (Kirillov et al., 2023) in plain torch, shared by the families built on it
(Matting Anything, SEMat). Not a matting family itself: it has no ``FAMILY``."""

from .config import SamConfig, read_sam_config
from .image_encoder import SamImageEncoder, encoder_memory_bytes
from .mask_decoder import SamDecoderOutput, SamMaskDecoder
from .model import OFFICIAL_CONFIGS, SAM_FILE_NAMES, SamGuidance, SamModel, build_sam, looks_like_sam, size_name
from .prompt_encoder import SamPromptEncoder

__all__ = [
    "OFFICIAL_CONFIGS",
    "SAM_FILE_NAMES",
    "SamConfig",
    "SamDecoderOutput",
    "SamImageEncoder",
    "SamMaskDecoder",
    "SamGuidance",
    "SamModel",
    "SamPromptEncoder",
    "build_sam",
    "encoder_memory_bytes",
    "looks_like_sam",
    "read_sam_config",
    "size_name",
]
