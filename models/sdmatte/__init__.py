"""SDMatte, SDMatte* and LiteSDMatte: matting on Stable Diffusion 2 (diffusers building blocks).

Importing this package is cheap (no diffusers): the network is imported when a file is loaded.
"""

from __future__ import annotations

from ..family import KINDS, Family, ShapeMap
from .architecture import COMPONENTS, describe_foreign_checkpoint


def recognises(shapes: ShapeMap) -> bool:
    """Tensors named after the authors' components (``unet.``, ``vae.``, ``text_encoder.``).

    Incomplete or foreign ones (a plain SD2 UNet under ``unet.``) are recognised too, so that
    loading them names exactly what is wrong.
    """
    return any(key.partition(".")[0] in COMPONENTS for key in shapes)


def diagnose(shapes: ShapeMap) -> str | None:
    """What a file no family recognises looks like, when it is a Stable Diffusion relative."""
    description = describe_foreign_checkpoint(shapes)
    if description is None or description.startswith("not a matting checkpoint"):
        return None
    return description


def load(weights, **options):
    from .loader import load_sdmatte  # noqa: PLC0415  (diffusers is imported here, on first load)

    return load_sdmatte(weights, **options)


FAMILY = Family(
    name="sdmatte",
    title="SDMatte / SDMatte* / LiteSDMatte",
    prompt_kinds=KINDS,
    looks_like="unet.*, vae.* and text_encoder.* tensors (the authors' .pth / .safetensors, or their "
    "Hugging Face folder with unet/, vae/, text_encoder/)",
    recognises=recognises,
    load=load,
    diagnose=diagnose,
)
