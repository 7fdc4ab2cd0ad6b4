"""Load SDMatte Model: a weights file in models/sdmatte (downloaded first when known and absent)
-> PROMPTMATTE_MODEL."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from . import model_files
from .patcher import PRECISIONS, load_patcher
from .types import CATEGORY, MatteModelType


class PromptMatteModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        folder = "models/sdmatte"
        return io.Schema(
            node_id="PromptMatteModelLoader",
            display_name="Load SDMatte Model",
            category=CATEGORY,
            description=(
                "Loads SDMatte / SDMatte* / LiteSDMatte weights from models/sdmatte (also models/SDMatte "
                "and 'sdmatte:' entries of extra_model_paths.yaml). Known weights are listed even when "
                "absent and downloaded from Hugging Face into models/sdmatte on first use (resumed if "
                "interrupted):\n" + model_files.known_sources_text()),
            inputs=[
                io.Combo.Input(
                    "ckpt_name", options=model_files.checkpoint_names(), default=model_files.DEFAULT_CHECKPOINT,
                    tooltip=(f"Weights file in {folder}. These are listed even when absent and downloaded "
                             "on first use (HF_ENDPOINT and HF_HUB_OFFLINE are honoured):\n"
                             + model_files.known_sources_text())),
                io.Combo.Input(
                    "precision", options=PRECISIONS, default="auto",
                    tooltip=("UNet precision (the VAE always runs in fp32). auto: fp32 as the authors run "
                             "it, on the CPU and on GPUs with room for it (about 7 GB for SDMatte); fp16 on "
                             "smaller GPUs (bf16 moves mattes ~9x more, so only where fp16 is unsupported).")),
            ],
            outputs=[MatteModelType.Output(
                display_name="model",
                tooltip="The matting model, managed by ComfyUI (moved to the GPU when used, offloaded "
                        "when other models need memory, unloaded by 'Unload models').")],
        )

    @classmethod
    def fingerprint_inputs(cls, ckpt_name: str, precision: str):
        # a file replaced under the same name is loaded again
        path = folder_paths.get_full_path(model_files.FOLDER_NAME, ckpt_name) or model_files.hf_folders().get(ckpt_name)
        if path is None:
            return (ckpt_name, precision)
        st = os.stat(path)
        return (ckpt_name, precision, st.st_mtime_ns, st.st_size)

    @classmethod
    def execute(cls, ckpt_name: str, precision: str) -> io.NodeOutput:
        path = model_files.resolve_checkpoint(ckpt_name)
        return io.NodeOutput(load_patcher(path, precision))
