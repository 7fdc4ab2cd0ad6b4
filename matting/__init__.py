"""PromptMatte's matting core: plain torch / numpy, no ComfyUI.

Prompts (clicks, box, mask, trimap, automatic) in image pixels, their rendering
to SDMatte's prompt maps and coordinates, prompts made from an alpha, the resize /
crop / batch pipeline around a matting model and its drivers (video following,
``follow``; full-resolution detail, ``detail``), masks as other nodes emit them,
foreground estimation, trimap morphology, and quality metrics with the
``evaluate`` / ``benchmark`` commands.

Names are imported from their modules on first use, so ``python -m
<pack>.matting.evaluate`` (numpy and scipy only) does not pay for torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "PromptError": "errors",
    "prompt_from_alpha": "alpha_prompt",
    "alpha_prompt_kind": "alpha_prompt",
    "DETAIL_MODES": "detail",
    "estimate_foreground": "foreground",
    "matte": "pipeline",
    "Prompt": "prompt",
    "parse_points_json": "prompt",
    "validate_for_image": "prompt",
    "model_kind": "render",
    "render_prompt": "render",
    "clean_trimap": "trimap",
    "trimap_from_mask": "trimap",
}

__all__ = list(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
