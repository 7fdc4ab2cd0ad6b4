"""Load Matting Model: a weights file of any family from models/matting or models/sdmatte (known
SDMatte weights downloaded first when absent) -> PROMPTMATTE_MODEL."""

from __future__ import annotations

import os

from comfy_api.latest import io

from . import model_files
from .patcher import PRECISIONS, load_patcher
from .types import CATEGORY, MatteModelType

# Families whose weights cannot be downloaded here (Google Drive, Meta's server): where they go.
MANUAL_WEIGHTS = (
    "Put these in models/matting yourself (they are published on Google Drive or Meta's server):\n"
    "MAM: mam_vitb.pth, plus a Segment Anything checkpoint in models/sams (sam_vit_b_01ec64.pth).\n"
    "SEMat: SEMat_SAM.pth or SEMat_HQ-SAM.pth (CC BY-NC 4.0: non-commercial use).\n"
    "SIM: ckpt_best.pth, plus classifier_resnet50_best.pth.tar beside it or in models/matting.\n"
    "AIM: aimnet_pretrained_matting.pth.")


class PromptMatteModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteModelLoader",
            display_name="Load Matting Model",
            category=CATEGORY,
            description=(
                "Loads matting weights of any supported family (SDMatte / SDMatte* / LiteSDMatte, MAM, "
                "SEMat, SIM, AIM; the family is read from the file's tensors) from models/matting and "
                "models/sdmatte (also models/SDMatte and 'matting:' / 'sdmatte:' entries of "
                "extra_model_paths.yaml). Known SDMatte weights are listed even when absent and downloaded "
                "from Hugging Face into models/sdmatte on first use (resumed if interrupted):\n"
                + model_files.known_sources_text() + "\n" + MANUAL_WEIGHTS),
            inputs=[
                io.Combo.Input(
                    "ckpt_name", options=model_files.checkpoint_names(), default=model_files.DEFAULT_CHECKPOINT,
                    tooltip=("Weights file in models/matting or models/sdmatte. Known SDMatte weights are listed "
                             "even when absent and downloaded on first use (HF_HUB_OFFLINE and HF_ENDPOINT are "
                             "honoured):\n" + model_files.known_sources_text() + "\n" + MANUAL_WEIGHTS)),
                io.Combo.Input(
                    "precision", options=PRECISIONS, default="auto",
                    tooltip=("Precision of the main weights (SDMatte's VAE always runs in fp32). auto: fp32 as "
                             "the authors run it, on the CPU and on GPUs with room for it (about 7 GB for "
                             "SDMatte); fp16 on smaller GPUs (bf16 moves mattes ~9x more, so only where fp16 is "
                             "unsupported).")),
                io.Combo.Input(
                    "companion", options=["auto", *model_files.companion_names()], default="auto",
                    optional=True,
                    tooltip=("The second weights file of a two-file family; other families ignore it. MAM: the "
                             "Segment Anything checkpoint it runs on (auto: sam_vit_b_01ec64.pth, ViT-B as "
                             "MAM's released weights, from models/sams, models/matting or beside the MAM file; "
                             "pick sam_vit_l/h for MAM weights trained on those). SIM: its semantic classifier "
                             "(auto: classifier_resnet50_best.pth.tar beside the checkpoint or in "
                             "models/matting).")),
            ],
            outputs=[MatteModelType.Output(
                display_name="model",
                tooltip="The matting model, managed by ComfyUI (moved to the GPU when used, offloaded "
                        "when other models need memory, unloaded by 'Unload models').")],
        )

    @classmethod
    def fingerprint_inputs(cls, ckpt_name: str, precision: str, companion: str = "auto"):
        # a file replaced under the same name is loaded again
        path = model_files.find_checkpoint(ckpt_name)
        if path is None:
            return (ckpt_name, precision, companion)
        st = os.stat(path)
        return (ckpt_name, precision, companion, st.st_mtime_ns, st.st_size)

    @classmethod
    def execute(cls, ckpt_name: str, precision: str, companion: str = "auto") -> io.NodeOutput:
        path = model_files.resolve_checkpoint(ckpt_name)
        find = model_files.companion_finder(path, companion)
        try:
            return io.NodeOutput(load_patcher(path, precision, find, companion_key=companion))
        except Exception as error:
            missing = getattr(error, "companion", None)  # models.MissingCompanionError
            if missing is None:
                raise
            folders = ", ".join(model_files.companion_folders(missing)) or f"models/{missing.folder}"
            raise ValueError(f"{error} Looked in: {folders} and {os.path.dirname(path)}. Put the file in one "
                             "of them and run again, or pick it in the loader's 'companion' input.") from None
