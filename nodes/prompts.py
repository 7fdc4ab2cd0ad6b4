"""Prompt nodes: points, box, mask and trimap -> PROMPTMATTE_PROMPT (a list of matting.Prompt).

A list with one prompt applies to every image; a list of N prompts pairs with N images, or gives
N alphas for one image (see 'Matting'). Coordinates are pixels of the image to matte.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..matting.errors import PromptError
from ..matting.masks import COMBINE_MODES, combine_masks, mask_batch
from ..matting.prompt import Prompt, parse_points_json
from ..matting.trimap import trimap_from_mask
from .types import CATEGORY, MattePromptType

_MAX = 16384

PROMPT_TOOLTIP = ("Prompt(s) for 'Matting'. One prompt is used for every image; a batch of "
                  "prompts pairs with a batch of images, or gives one alpha per prompt for one image.")


def combine_input() -> io.Combo.Input:
    # optional: API-format prompts saved before it existed carry no value for it (they get union)
    return io.Combo.Input(
        "combine", options=list(COMBINE_MODES), default="union", optional=True,
        tooltip=("Several masks for one image (SAM packs give one per detected object): 'union' joins them into "
                 "one prompt (one matte); 'largest' keeps only the biggest; 'each' makes one prompt per mask "
                 "(one matte per mask, or mask i for image i of a batch of frames)."))


def _combined(mask, threshold: float, combine: str, what: str = "mask") -> torch.Tensor:
    """A MASK input as the node uses it: (N, H, W) after ``combine`` (N = 1 unless 'each')."""
    return combine_masks(mask_batch(mask, what), combine, threshold, what)


def bboxes_to_prompts(bboxes) -> list[Prompt]:
    """BBOX as KJNodes' Points Editor and Florence2 emit it: [(x1, y1, x2, y2), ...] in pixels
    (also a single box, or one list of boxes per image, which is flattened)."""
    def flat(v):
        if isinstance(v, torch.Tensor):
            v = v.tolist()
        if isinstance(v, (list, tuple)) and len(v) == 4 and all(isinstance(c, (int, float)) for c in v):
            return [tuple(v)]
        if isinstance(v, (list, tuple)):
            return [b for item in v for b in flat(item)]
        raise PromptError(f"the bboxes input holds {v!r}; expected boxes (x1, y1, x2, y2) in pixels "
                          "as KJNodes' Points Editor or Florence2 output them")
    boxes = flat(bboxes)
    if not boxes:
        raise PromptError("the bboxes input is empty: draw a box (Ctrl+drag in the Points Editor) or "
                          "disconnect it and use x1 y1 x2 y2")
    return [Prompt.from_box(*b) for b in boxes]


def segs_to_masks(segs) -> torch.Tensor:
    """Impact Pack SEGS ((H, W), [SEG(cropped_image, cropped_mask, confidence, crop_region, ...)])
    as full-size masks (N, H, W): each cropped mask pasted at its crop_region (x1, y1, x2, y2)."""
    try:
        (h, w), items = segs[0], list(segs[1])
        h, w = int(h), int(w)
    except (TypeError, ValueError, IndexError):
        raise PromptError("the segs input is not Impact Pack SEGS ((height, width), [SEG, ...]); "
                          "connect a detector's SEGS output") from None
    if not items:
        raise PromptError("the segs input has no segments: the detector found nothing; lower its "
                          "threshold or use a mask instead")
    out = torch.zeros(len(items), h, w)
    for i, seg in enumerate(items):
        m = torch.as_tensor(seg.cropped_mask, dtype=torch.float32)
        while m.dim() > 2:
            m = m[0]
        x1, y1, x2, y2 = (int(v) for v in seg.crop_region)
        mh, mw = min(m.shape[0], h - y1, y2 - y1), min(m.shape[1], w - x1, x2 - x1)
        out[i, y1:y1 + mh, x1:x1 + mw] = m[:mh, :mw]
    return out


class PromptMattePoints(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMattePoints",
            display_name="Matte Prompt: Points",
            category=CATEGORY,
            description="Clicks on the subject (1 to 10) as a matting prompt.",
            inputs=[io.String.Input(
                "points", multiline=True, default="[]", placeholder='[{"x": 10, "y": 20}]',
                tooltip=('Clicks as JSON [{"x": 10, "y": 20}, ...] in pixels of the image to matte, in '
                         "click order, at most 10 (KJNodes Points Editor 'coord_str' works as is).")),
            ],
            outputs=[MattePromptType.Output(display_name="prompt", tooltip=PROMPT_TOOLTIP)],
        )

    @classmethod
    def execute(cls, points: str) -> io.NodeOutput:
        text = points.replace("'", '"')  # str() of a list of dicts, as some nodes emit it
        return io.NodeOutput([Prompt.from_points(parse_points_json(text))])


class PromptMatteBox(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        corner = "pixels of the image to matte; used when neither 'bboxes' nor 'mask' is connected"
        return io.Schema(
            node_id="PromptMatteBox",
            display_name="Matte Prompt: Box",
            category=CATEGORY,
            description="A box around the subject as a matting prompt (one prompt per box).",
            inputs=[
                io.Int.Input("x1", default=0, min=0, max=_MAX, tooltip=f"Left edge, {corner}."),
                io.Int.Input("y1", default=0, min=0, max=_MAX, tooltip=f"Top edge, {corner}."),
                io.Int.Input("x2", default=512, min=0, max=_MAX, tooltip=f"Right edge (exclusive), {corner}."),
                io.Int.Input("y2", default=512, min=0, max=_MAX, tooltip=f"Bottom edge (exclusive), {corner}."),
                io.BBOX.Input("bboxes", optional=True,
                              tooltip="Boxes (x1, y1, x2, y2) from KJNodes' Points Editor or Florence2; "
                                      "one prompt per box. Overrides x1 y1 x2 y2."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Use the box around the nonzero area of this mask (see 'combine' for a "
                                      "batch of masks). Overrides x1 y1 x2 y2."),
                combine_input(),
            ],
            outputs=[MattePromptType.Output(display_name="prompt", tooltip=PROMPT_TOOLTIP)],
        )

    @classmethod
    def execute(cls, x1: int, y1: int, x2: int, y2: int, bboxes=None, mask=None,
                combine: str = "union") -> io.NodeOutput:
        if bboxes is not None:
            return io.NodeOutput(bboxes_to_prompts(bboxes))
        if mask is not None:
            return io.NodeOutput([box_of_mask(m, i) for i, m in enumerate(_combined(mask, 0.0, combine))])
        return io.NodeOutput([Prompt.from_box(x1, y1, x2, y2)])


def box_of_mask(mask: torch.Tensor, index: int = 0) -> Prompt:
    bb = Prompt.from_mask(mask, threshold=0.0).bounding_box() if bool((mask > 0).any()) else None
    if bb is None:
        raise PromptError(f"mask {index + 1} of the 'mask' input is empty (all zero), so it has no box; "
                          "paint the subject or connect a different mask")
    h, w = mask.shape
    return Prompt.from_box(*bb, source_size=(h, w))


class PromptMatteMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteMask",
            display_name="Matte Prompt: Mask",
            category=CATEGORY,
            description="A rough mask of the subject (e.g. from SAM) as a matting prompt.",
            inputs=[
                io.Mask.Input("mask", optional=True,
                              tooltip="Rough mask of the subject, 1 = subject (SAM masks, a mask painted in "
                                      "Load Image's mask editor). A batch is combined as 'combine' says. "
                                      "Another size than the image is resized to it (nearest)."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=0.99, step=0.01,
                               tooltip="Mask values above this count as the subject."),
                io.SEGS.Input("segs", optional=True,
                              tooltip="Impact Pack SEGS instead of (or besides) a mask: each segment is one "
                                      "mask of the batch 'combine' applies to."),
                combine_input(),
            ],
            outputs=[MattePromptType.Output(display_name="prompt", tooltip=PROMPT_TOOLTIP)],
        )

    @classmethod
    def execute(cls, threshold: float, mask=None, segs=None, combine: str = "union") -> io.NodeOutput:
        if mask is None and segs is None:
            raise PromptError("Matte Prompt: Mask needs a 'mask' (e.g. from a SAM node or Load Image) or "
                              "Impact Pack 'segs'; connect one")
        masks = [] if mask is None else list(mask_batch(mask, "mask"))
        if segs is not None:
            masks += list(segs_to_masks(segs))
        if len({tuple(m.shape) for m in masks}) > 1:
            raise PromptError("the 'mask' and the 'segs' are of different sizes; connect masks of one image")
        chosen = combine_masks(torch.stack(masks), combine, threshold)
        return io.NodeOutput([Prompt.from_mask(m, threshold=threshold) for m in chosen])


class PromptMatteTrimap(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteTrimap",
            display_name="Matte Prompt: Trimap",
            category=CATEGORY,
            description=(
                "A trimap (sure subject / unknown edge band / sure background) as a matting prompt: what "
                "SIM takes. The released SDMatte weights were trained with point, box and mask prompts; a "
                "trimap runs the authors' code path for it without that guarantee: compare with a mask "
                "prompt."),
            inputs=[
                io.Mask.Input("trimap", optional=True,
                              tooltip="Trimap MASK: 1 sure subject, 0.5 unknown, 0 sure background "
                                      "(values are snapped to the nearest). A batch gives one prompt each."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Or a mask of the subject (1 = subject); the trimap is built from it "
                                      "with 'erode' and 'dilate' (a batch of masks: see 'combine'). Ignored "
                                      "when 'trimap' is connected."),
                io.Int.Input("erode", default=10, min=0, max=512,
                             tooltip="Pixels the mask shrinks to make the sure-subject area."),
                io.Int.Input("dilate", default=10, min=0, max=512,
                             tooltip="Pixels the mask grows; beyond it is sure background. The band in "
                                     "between is unknown (0.5)."),
                combine_input(),
            ],
            outputs=[
                MattePromptType.Output(display_name="prompt", tooltip=PROMPT_TOOLTIP),
                io.Mask.Output(display_name="trimap", tooltip="The trimap used (0 / 0.5 / 1), to preview."),
            ],
        )

    @classmethod
    def execute(cls, erode: int, dilate: int, trimap=None, mask=None, combine: str = "union") -> io.NodeOutput:
        if trimap is not None:
            tri = mask_batch(trimap, "trimap")
        elif mask is not None:
            tri = trimap_from_mask(_combined(mask, 0.5, combine), erode, dilate)
        else:
            raise PromptError("Matte Prompt: Trimap needs a 'trimap' or a 'mask' to build one from; connect one")
        prompts = [Prompt.from_trimap(t) for t in tri]
        return io.NodeOutput(prompts, torch.stack([p.mask for p in prompts]))
