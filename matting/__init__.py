"""PromptMatte's matting core: plain torch, no ComfyUI.

Prompts (clicks, box, mask, trimap, automatic) in image pixels, their rendering
to SDMatte's prompt maps and coordinates, the resize / crop / batch pipeline
around a matting model, foreground estimation and trimap morphology.
"""

from .errors import PromptError
from .foreground import estimate_foreground
from .pipeline import matte
from .prompt import Prompt, parse_points_json, validate_for_image
from .render import model_kind, render_prompt
from .trimap import clean_trimap, trimap_from_mask

__all__ = [
    "Prompt",
    "PromptError",
    "parse_points_json",
    "validate_for_image",
    "render_prompt",
    "model_kind",
    "matte",
    "estimate_foreground",
    "trimap_from_mask",
    "clean_trimap",
]
