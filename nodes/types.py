"""Custom socket types shared by the PromptMatte nodes (declared once, here).

- ``PROMPTMATTE_MODEL``: a ComfyUI ``ModelPatcher`` around the matting network returned by
  ``models.load_matting_model``; get the network with ``nodes.patcher.network(patcher)``
  (``patcher.model`` is a thin holder when the network's ``device`` is a read-only property).
- ``PROMPTMATTE_PROMPT``: a Python ``list`` of ``matting.Prompt`` (coordinates in image pixels).
- ``PROMPTMATTE_KEYFRAMES``: a Python ``list`` of ``(frame index, list of matting.Prompt)`` for
  Matting (video), in the order they were chained.
"""

from comfy_api.latest import io

MatteModelType = io.Custom("PROMPTMATTE_MODEL")
MattePromptType = io.Custom("PROMPTMATTE_PROMPT")
MatteKeyframesType = io.Custom("PROMPTMATTE_KEYFRAMES")

CATEGORY = "matting/PromptMatte"

__all__ = ["MatteModelType", "MattePromptType", "MatteKeyframesType", "CATEGORY"]
