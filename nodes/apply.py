"""Matting: model (any family) + image (+ prompt) -> alpha MASK (1 = foreground)."""

from __future__ import annotations

import os
import uuid

import numpy as np
import torch
from PIL import Image

import comfy.model_management as mm
import folder_paths
import comfy.utils
from comfy_api.latest import io

from ..matting.detail import DETAIL_MODES
from ..matting.errors import PromptError
from ..matting.pipeline import matte, pair_prompts
from .patcher import make_resident, network
from .types import CATEGORY, MattePromptType, MatteModelType

RESIZE = {"stretch (as the authors)": "stretch", "keep aspect": "keep_aspect"}
FOCUS = {"whole image": "whole", "crop to prompt": "crop"}
PREVIEW_MAX_SIDE = 1024
MAX_CHUNK = 4  # items per model call at most on a GPU

ALPHA_TOOLTIP = (
    "Alpha matte, 1 = foreground (like SAM and inpaint masks). Core 'Join Image with Alpha' and Load "
    "Image's MASK use the inverse (1 - alpha): put an 'Invert Mask' in between, or use Matte "
    "Composite's 'rgba' output.")


def _memory_bytes(net, batch: int, height: int, width: int) -> int:
    est = getattr(net, "inference_memory_bytes", None)
    if est is not None:
        return int(est(batch, height, width))
    # Fallback if the network has no estimate: ~ 40 KB per working pixel per item (SD2-size UNet,
    # VAE feature maps at full resolution dominate), measured order of magnitude only.
    return int(batch * height * width * 40 * 1024)


# How a user makes each prompt kind, for the message that refuses a kind the model cannot take.
MAKE_PROMPT = {
    "point": "clicks: the 'Matte Prompt Editor' or 'Matte Prompt: Points'",
    "box": "a box: the 'Matte Prompt Editor' or 'Matte Prompt: Box' (a detector's box, e.g. GroundingDINO's, "
           "feeds it too)",
    "mask": "a mask: 'Matte Prompt: Mask' fed by a segmentation node (e.g. a SAM node turns clicks or a box "
            "into a mask)",
    "trimap": "a trimap: 'Matte Prompt: Trimap' (turns a rough mask, e.g. from a SAM node, into a trimap)",
    "auto": "no prompt: disconnect the prompt input (automatic matting)",
}
KIND_NAMES = {"point": "points", "box": "a box", "mask": "a mask", "trimap": "a trimap", "auto": "no prompt"}


def family_title(net) -> str:
    from ..models import families  # noqa: PLC0415  (cheap: family descriptions, no networks)

    titles = {family.name: family.title for family in families()}
    return titles.get(getattr(net, "family", ""), getattr(net, "family", "this model"))


def refuse_unsupported_kinds(net, prompts) -> None:
    """Before any computing: a prompt kind the loaded family cannot take is an error that names
    what it takes and how to make that."""
    accepted = tuple(getattr(net, "prompt_kinds", ()))
    given = [p.kind for p in (prompts or [])] or ["auto"]
    wrong = [kind for kind in dict.fromkeys(given) if kind not in accepted]
    if not wrong:
        return
    takes = " or ".join(KIND_NAMES[kind] for kind in accepted)
    how = "; ".join(MAKE_PROMPT[kind] for kind in accepted)
    raise PromptError(f"{family_title(net)} cannot matte with {KIND_NAMES.get(wrong[0], wrong[0])}: it takes "
                      f"{takes}. Give it {how}.")


class SemanticClasses:
    """Collects what a family reports beside its alpha (SIM: the matting pattern of each unknown
    pixel) and draws it over the images: one RGB image per alpha."""

    def __init__(self, net, images: torch.Tensor, n_out: int):
        self.net, self.images, self.n_out = net, images, n_out
        self.classes: torch.Tensor | None = None  # (N, H, W) int64, only once a family reports classes
        self.source = list(range(n_out)) if images.shape[0] == n_out else [0] * n_out

    def collect(self, items) -> None:
        found = getattr(self.net, "last_semantic_classes", None)
        if found is None:
            return
        if self.classes is None:
            self.classes = torch.full((self.n_out, *self.images.shape[1:3]), -1, dtype=torch.long)
        for (out, image_index, (x0, y0, x1, y1)), classes in zip(items, found.cpu()):
            if tuple(classes.shape) != (y1 - y0, x1 - x0):  # at a working size: nearest, as labels resize
                classes = torch.nn.functional.interpolate(classes[None, None].float(), size=(y1 - y0, x1 - x0),
                                                          mode="nearest")[0, 0].long()
            self.source[out] = image_index
            self.classes[out, y0:y1, x0:x1] = classes

    def preview(self) -> torch.Tensor:
        """(N, H, W, 3): each unknown pixel in its class's colour over the image; the image elsewhere
        (and everywhere for families that report no classes)."""
        if self.classes is None or not (self.classes >= 0).any():
            return self.images[self.source].float().clamp(0, 1)
        from ..models.sim import class_preview  # noqa: PLC0415

        return class_preview(self.classes, self.images[self.source].permute(0, 3, 1, 2).float().clamp(0, 1))


def model_call(net, caption):
    """The pipeline's ``model_fn`` for the network: the network casts to its own dtypes."""
    text = caption or ""

    def model_fn(im, prompt_map, coords, kind, trans):
        with torch.inference_mode():
            return net(im, prompt_map, coords, kind, trans, caption=text).float()

    return model_fn


def check_alpha(alpha: torch.Tensor) -> torch.Tensor:
    if torch.isnan(alpha).any():
        raise PromptError("the model produced NaN alpha values (a numeric overflow); load the model "
                          "with precision fp32 or bf16")
    return alpha


def frame_matter(patcher, height: int, width: int, *, transparent, resolution, resize, focus, margin, caption,
                 detail: str = "off"):
    """``matte_frame(frame (1, H, W, 3), prompt) -> alpha (H, W)``: Matting's run path one frame at a
    time (video), with the model made resident once for one frame's working set."""
    net = network(patcher)
    at_input_size = bool(getattr(net, "works_at_input_size", False))
    detail_size = getattr(net, "detail_size", None) if detail != "off" else None
    work = (height, width) if at_input_size else (resolution, resolution)
    if detail_size is not None:
        work = detail_size(height, width)
    elif at_input_size:
        refuse_too_large(net, height, width, int(mm.get_free_memory(patcher.load_device)))
    make_resident(patcher, _memory_bytes(net, 1, *work))
    model_fn = model_call(net, caption)
    kinds = tuple(getattr(net, "prompt_kinds", ()))

    def matte_frame(frame, prompt):
        alpha = matte(model_fn, frame.to(mm.intermediate_device()), [prompt], resolution=resolution,
                      resize=resize, focus=focus, margin=margin, transparent=transparent,
                      at_input_size=at_input_size, detail=detail, detail_size=detail_size, prompt_kinds=kinds)
        return check_alpha(alpha[0]).to(mm.intermediate_device())

    return matte_frame


def refuse_too_large(net, height: int, width: int, free: int) -> None:
    """Before any computing: a family that works at the input's size and would need more working
    memory than is free for it is an error that names both, what fits and the way out."""
    need = _memory_bytes(net, 1, height, width)
    if need <= free:
        return
    low, high = 0.0, 1.0  # the largest scale of the image whose working memory fits
    for _ in range(20):
        mid = (low + high) / 2
        if _memory_bytes(net, 1, max(1, int(height * mid)), max(1, int(width * mid))) <= free:
            low = mid
        else:
            high = mid
    fits = f"{int(width * low)}×{int(height * low)}"
    raise PromptError(
        f"{family_title(net)} works at the image's own size, and at {width}×{height} it needs about "
        f"{need / 1e9:.1f} GB of working memory where {free / 1e9:.1f} GB is free (about {fits} fits). "
        f"Choose detail 'guided' or 'refine' (the model then works at a size that fits and the alpha is "
        f"brought to full size), or downscale the image.")


def run_matting(patcher, image, prompts, *, transparent, resolution, resize, focus, margin,
                caption, merge_objects, side: list | None = None, detail: str = "off") -> torch.Tensor:
    """Alpha (N, H, W); ``side``, when given a list, receives the ``SemanticClasses`` of the run."""
    net = network(patcher)
    refuse_unsupported_kinds(net, prompts)
    at_input_size = bool(getattr(net, "works_at_input_size", False))
    detail_size = getattr(net, "detail_size", None) if detail != "off" else None
    items, n_out = pair_prompts(int(image.shape[0]), prompts, bool(merge_objects))  # a batch mismatch stops here
    n_items = len(items)
    # On a GPU a few items per call run faster than one by one; on the CPU they do not, and one
    # item per call gives the finest progress and interrupts.
    chunk = 1 if mm.is_device_cpu(patcher.load_device) else max(1, min(n_items, MAX_CHUNK))
    # Memory asked of ComfyUI on top of the weights: the network's own estimate
    # (net.inference_memory_bytes) of the activations of one forward pass over `chunk` items at the
    # largest working size, resolution × resolution (keep-aspect and crops are never larger): VAE
    # encoder/decoder feature maps at full size plus UNet activations and attention at 1/8 size.
    # Families that work at the input size are asked about the input size.
    height, width = (int(image.shape[1]), int(image.shape[2])) if at_input_size else (resolution, resolution)
    if detail_size is not None:  # the detail path sends a large image at the size the family resolves
        height, width = detail_size(height, width)
    if at_input_size and detail_size is None:
        refuse_too_large(net, height, width, int(mm.get_free_memory(patcher.load_device)))
    make_resident(patcher, _memory_bytes(net, chunk, height, width))
    free = mm.get_free_memory(patcher.load_device)
    while chunk > 1 and _memory_bytes(net, chunk, height, width) > free:
        chunk //= 2  # long batches run in chunks that fit in what is free now

    model_fn = model_call(net, caption)
    bar = comfy.utils.ProgressBar(n_items)

    def on_item(done, total):
        bar.update_absolute(done, total)
        mm.throw_exception_if_processing_interrupted()

    def on_tile(done, total):  # refinement: the bar counts an item's tiles, Cancel stops between them
        bar.update_absolute(done, total)
        mm.throw_exception_if_processing_interrupted()

    # The batch stays on the intermediate device (CPU): the network moves each chunk to its own
    # device and returns the chunk's alpha there, so a long video batch never sits in VRAM.
    image = image.to(mm.intermediate_device())
    semantic = SemanticClasses(net, image, n_out)
    alpha = matte(model_fn, image, prompts, resolution=resolution,
                  resize=resize, focus=focus, margin=margin, transparent=transparent,
                  merge_objects=merge_objects, chunk_size=chunk, on_item=on_item, at_input_size=at_input_size,
                  on_chunk=semantic.collect, detail=detail, detail_size=detail_size,
                  prompt_kinds=tuple(getattr(net, "prompt_kinds", ())), on_tile=on_tile)
    if side is not None:
        side.append(semantic)
    return check_alpha(alpha).to(mm.intermediate_device())


def alpha_preview(alpha: torch.Tensor) -> dict:
    """The first alpha as a grey PNG in ComfyUI's temp folder (for the prompt editor's overlay);
    returns its /view reference."""
    arr = (alpha[0].clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr, "L")
    scale = PREVIEW_MAX_SIDE / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    folder = os.path.join(folder_paths.get_temp_directory(), "promptmatte")
    os.makedirs(folder, exist_ok=True)
    name = f"alpha_{uuid.uuid4().hex[:12]}.png"
    img.save(os.path.join(folder, name), compress_level=1)
    return {"filename": name, "subfolder": "promptmatte", "type": "temp"}


def detail_input() -> io.Combo.Input:
    """The 'detail' input of Matting and Matting (video): appended last, so saved workflows keep theirs."""
    return io.Combo.Input(
        "detail", options=list(DETAIL_MODES), default="guided", optional=True,
        tooltip="How the alpha reaches a photo larger than the model's working size "
                "(SDMatte's resolution; MAM and SEMat 1024 on the longer side; AIM 1080 "
                "on the shorter; SIM works at up to 1536). guided: a guided filter "
                "led by the full-resolution image sharpens the uncertain edges. "
                "refine: that, then the model again on full-resolution tiles along "
                "those edges (slower: one model run per tile). off: resized back, as "
                "the authors (SIM at full size then needs the memory for it). "
                "Images at or below the working size are the same with every option.")


SEMANTIC_TOOLTIP = (
    "SIM only: why each unknown pixel of the trimap was matted as it was — the matting pattern its "
    "classifier saw there (hair, fur, glass, smoke, net... 20 classes, one colour each, listed in the "
    "README) over the image. Other families: the image unchanged.")


class PromptMatteApply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteApply",
            display_name="Matting",
            category=CATEGORY,
            description=("Computes an alpha matte with the loaded model (SDMatte, LiteSDMatte, MAM, SEMat, SIM "
                         "or AIM), guided by a prompt or automatic. A prompt kind the model cannot take is "
                         "refused before computing, with what it takes."),
            inputs=[
                MatteModelType.Input("model", tooltip="From 'Load Matting Model'."),
                io.Image.Input("image", tooltip="RGB image(s) to matte (an RGBA image must be made RGB first)."),
                MattePromptType.Input("prompt", optional=True,
                                  tooltip="Points, box, mask or trimap prompt. Not connected: automatic "
                                          "(the model picks the salient subject). Each family takes its "
                                          "own kinds: SDMatte all (trained with points, boxes and masks); "
                                          "MAM points, a box or a mask (its box); SEMat a box, a mask (its box) or none; "
                                          "SIM a trimap; AIM none."),
                io.Boolean.Input("transparent", default=False,
                                 tooltip="On for see-through subjects (glass, smoke, veils): SDMatte's "
                                         "transparency flag (other families have none)."),
                io.Int.Input("resolution", default=1024, min=64, max=4096, step=64,
                             tooltip="SDMatte's working size in pixels (multiple of 64). The authors use "
                                     "1024. Other families resize as their authors do (MAM, SEMat: long "
                                     "side 1024; AIM, SIM: their own rules) and ignore it."),
                io.Combo.Input("resize", options=list(RESIZE), default="stretch (as the authors)",
                               tooltip="SDMatte only. stretch: squash the image to resolution × resolution "
                                       "as the authors do. keep aspect: longer side = resolution."),
                io.Combo.Input("focus", options=list(FOCUS), default="whole image",
                               tooltip="crop to prompt: matte a crop around the points / box / mask at full "
                                       "working resolution (finer edges on small subjects), the rest is 0."),
                io.Float.Input("margin", default=0.1, min=0.0, max=4.0, step=0.05,
                               tooltip="With 'crop to prompt': border added around the prompt, as a "
                                       "fraction of its size."),
                io.Boolean.Input("merge_objects", default=False,
                                 tooltip="One image with several prompts: on = one alpha, the union of the "
                                         "objects; off = one alpha per prompt."),
                io.String.Input("caption", optional=True, default="", multiline=False,
                                tooltip="SDMatte only: optional text describing the subject (the model was "
                                        "trained with an empty caption)."),
                detail_input(),
            ],
            outputs=[io.Mask.Output(display_name="alpha", tooltip=ALPHA_TOOLTIP),
                     io.Image.Output(display_name="semantic_classes", tooltip=SEMANTIC_TOOLTIP)],
        )

    @classmethod
    def execute(cls, model, image, transparent: bool, resolution: int, resize: str, focus: str,
                margin: float, merge_objects: bool, prompt=None, caption: str = "",
                detail: str = "guided") -> io.NodeOutput:
        if resize not in RESIZE or focus not in FOCUS or detail not in DETAIL_MODES:
            raise PromptError(f"resize must be one of {list(RESIZE)}, focus one of {list(FOCUS)} and detail "
                              f"one of {list(DETAIL_MODES)}")
        side: list = []
        alpha = run_matting(model, image, prompt, transparent=transparent, resolution=resolution,
                            resize=RESIZE[resize], focus=FOCUS[focus], margin=margin, caption=caption,
                            merge_objects=merge_objects, side=side, detail=detail)
        return io.NodeOutput(alpha, side[0].preview(), ui={"promptmatte_alpha": [alpha_preview(alpha)]})
