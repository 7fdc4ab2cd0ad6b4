"""PromptMatte ComfyUI nodes (V3 API). Imported only inside a ComfyUI process."""

from __future__ import annotations

import os

from comfy_api.latest import ComfyExtension, io

from . import model_files
from .apply import PromptMatteApply
from .composite import PromptMatteComposite
from .metrics import PromptMatteMetrics
from .model_node import PromptMatteModelLoader
from .prompts import PromptMatteBox, PromptMatteMask, PromptMattePoints, PromptMatteTrimap
from .video import PromptMatteKeyframe, PromptMatteVideo

model_files.register_model_folder()

NODES: list[type[io.ComfyNode]] = [
    PromptMatteModelLoader,
    PromptMattePoints,
    PromptMatteBox,
    PromptMatteMask,
    PromptMatteTrimap,
    PromptMatteApply,
    PromptMatteComposite,
    PromptMatteMetrics,
    PromptMatteVideo,
    PromptMatteKeyframe,
]

# The interactive editor node is written separately; add it when its module is there (an error
# inside it is not hidden: ComfyUI reports the pack as failed to import).
if os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "editor.py")):
    from .editor import PromptMatteEditor

    NODES.append(PromptMatteEditor)


class PromptMatteExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> PromptMatteExtension:
    return PromptMatteExtension()
