"""PromptMatte: interactive matting for ComfyUI, five matting systems behind one set of nodes
(SDMatte / SDMatte* / LiteSDMatte, Matting Anything, SEMat, Semantic Image Matting, AIM).

Imported by ComfyUI as a custom-node package. Imported anywhere else (a plain
Python process, the test suite), only the ComfyUI-free parts (``models``,
``matting``) are usable and no node is registered.
"""

try:
    import comfy_api.latest  # noqa: F401  (present only inside a ComfyUI process)
except ImportError:
    _INSIDE_COMFYUI = False
else:
    _INSIDE_COMFYUI = True

WEB_DIRECTORY = "./web/js"

if _INSIDE_COMFYUI:
    from .nodes import comfy_entrypoint  # noqa: F401

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"] if _INSIDE_COMFYUI else ["WEB_DIRECTORY"]
