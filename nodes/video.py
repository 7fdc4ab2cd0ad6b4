"""Matting (video): prompt one frame, follow the subject through the clip; Matte Keyframe chains
prompts on other frames. The rules are matting/follow.py's; this is the ComfyUI front door."""

from __future__ import annotations

import hashlib

import torch

import comfy.model_management as mm
import comfy.utils
from comfy_api.latest import io

from ..matting.detail import DETAIL_MODES
from ..matting.errors import PromptError
from ..matting.prompt import Prompt
from .apply import ALPHA_TOOLTIP, FOCUS, RESIZE, alpha_preview, detail_input, frame_matter, refuse_unsupported_kinds
from .patcher import network
from .types import CATEGORY, MatteKeyframesType, MattePromptType, MatteModelType

FOLLOW_TOOLTIP = (
    "How each frame is prompted: frames before the first prompted frame are followed backwards from "
    "it, every other frame forwards from the last prompted frame before it (a keyframe takes over from "
    "its frame on). A followed frame gets its neighbour's alpha as the prompt its family takes: a mask "
    "(alpha > 0.5 grown by the motion margin) for SDMatte and MAM, or for SEMat given a mask; a box (the "
    "alpha's box grown by the margin) for SEMat given a box; a trimap (alpha eroded / dilated by the "
    "margin) for SIM; nothing for AIM or without a prompt. Following stops at a scene cut, when the subject "
    "leaves the frame (its alpha falls below 10 % of its area on the prompted frame) or when the alpha "
    "jumps to something else; the frames after stay empty until the next keyframe, and the report says so.")

# The last interrupted (or failed) run's finished frames, so queueing the same graph again goes on
# from where it stopped instead of matting them again. One run only: a clip's alphas can be large.
_unfinished: dict = {}


def _fingerprint(model, frames: torch.Tensor, anchors: dict, options: tuple) -> str:
    """Identifies a run: the model, the frames (a sample of every frame's pixels), the prompts and
    the options. Cheap next to matting a frame, whatever the clip's size."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((id(network(model)), tuple(frames.shape), options)).encode())
    sample = frames[:, ::7, ::7].to(torch.float64).sum(dim=(1, 2, 3))
    h.update(sample.numpy().tobytes())
    for t in sorted(anchors):
        prompt, kind = anchors[t]
        h.update(repr((t, kind, prompt)).encode())
        if prompt.mask is not None:
            h.update(prompt.mask.to(torch.float32).numpy().tobytes())
    return h.hexdigest()


def _one_prompt(prompts, where: str) -> Prompt:
    prompts = [prompts] if isinstance(prompts, Prompt) else list(prompts or [])
    if len(prompts) != 1:
        raise PromptError(f"{where} has {len(prompts)} prompts; Matting (video) follows one subject: give one "
                          "prompt per frame (for several subjects, run one Matting (video) per subject and "
                          "join their alphas)")
    return prompts[0]


def collect_anchors(prompt, prompt_frame: int, keyframes, n_frames: int, size) -> dict:
    """frame -> (user's Prompt, "prompt" | "keyframe"). A keyframe MASK batch holds one mask per frame
    (all zero: no prompt there); the prompt input wins on its own frame."""
    anchors: dict = {}
    if isinstance(keyframes, torch.Tensor):
        masks = keyframes if keyframes.dim() == 3 else keyframes[None]
        if masks.shape[0] != n_frames or tuple(masks.shape[1:]) != tuple(size):
            raise PromptError(
                f"the keyframes mask batch is {masks.shape[0]} masks of {masks.shape[2]}×{masks.shape[1]} but the "
                f"clip is {n_frames} frames of {size[1]}×{size[0]}; give one mask per frame at the frames' size "
                "(all zero where a frame has no prompt)")
        for t in range(n_frames):
            if bool((masks[t] > 0.5).any()):
                anchors[t] = (Prompt.from_mask(masks[t]), "keyframe")
    elif keyframes is not None:
        for t, prompts in keyframes:
            anchors[int(t)] = (_one_prompt(prompts, f"the keyframe on frame {t}"), "keyframe")
    if prompt is not None:
        anchors[int(prompt_frame)] = (_one_prompt(prompt, "the prompt"), "prompt")
    for t, (p, kind) in anchors.items():
        if not 0 <= t < n_frames:
            what = "prompt_frame" if kind == "prompt" else "a keyframe's frame"
            raise PromptError(f"{what} is {t}, but the clip has frames 0 to {n_frames - 1}")
        anchors[t] = (p.scaled_to(*size), kind)
    return anchors


class PromptMatteVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteVideo",
            display_name="Matting (video)",
            category=CATEGORY,
            description=("Mattes every frame of a clip with the loaded model, prompted on one frame (and any "
                         "keyframes): the subject is followed from frame to frame, scene cuts and exits are "
                         "detected and reported. Frames are matted one at a time: memory does not grow with "
                         "the clip beyond its frames and alphas. " + FOLLOW_TOOLTIP),
            inputs=[
                MatteModelType.Input("model", tooltip="From 'Load Matting Model'."),
                io.Image.Input("frames", tooltip="The clip's frames in order (an IMAGE batch, e.g. core Load Video "
                                                 "-> Get Video Components)."),
                MattePromptType.Input("prompt", optional=True,
                                      tooltip="One prompt (points, box, mask or trimap) on the frame prompt_frame, "
                                              "e.g. from the Matte Prompt Editor. Not connected: automatic "
                                              "families matte every frame on their own; others need keyframes."),
                io.Int.Input("prompt_frame", default=0, min=0, max=1_000_000,
                             tooltip="The frame the prompt was drawn on (0 = first). The Matte Prompt Editor's "
                                     "'frame' output gives the frame chosen there."),
                io.MultiType.Input("keyframes", types=[MatteKeyframesType, io.Mask], optional=True,
                                   tooltip="More prompts on other frames: 'Matte Keyframe' nodes in a chain, or "
                                           "a MASK batch with one mask per frame (e.g. SAM 2 video segmentation; "
                                           "an all-zero mask = no prompt on that frame). A keyframe replaces the "
                                           "followed prompt from its frame on (e.g. after a cut)."),
                io.Boolean.Input("transparent", default=False,
                                 tooltip="As in Matting: SDMatte's transparency flag."),
                io.Int.Input("resolution", default=1024, min=64, max=4096, step=64,
                             tooltip="As in Matting: SDMatte's working size (other families resize as their "
                                     "authors do)."),
                io.Combo.Input("resize", options=list(RESIZE), default="stretch (as the authors)",
                               tooltip="As in Matting (SDMatte only)."),
                io.Combo.Input("focus", options=list(FOCUS), default="whole image",
                               tooltip="As in Matting: 'crop to prompt' mattes each frame in a crop around its "
                                       "(followed) prompt."),
                io.Float.Input("margin", default=0.1, min=0.0, max=4.0, step=0.05,
                               tooltip="As in Matting: with 'crop to prompt', the border around the prompt."),
                io.String.Input("caption", optional=True, default="", multiline=False,
                                tooltip="As in Matting (SDMatte only)."),
                io.Float.Input("motion_margin", default=0.05, min=0.0, max=0.5, step=0.01,
                               tooltip="How far the subject may move from one frame to the next, as a fraction of "
                                       "the frame's longer side (0.05 = 26 px at 512 wide): the followed mask, box "
                                       "or trimap band is grown by it. Raise it for fast motion; too large lets "
                                       "neighbouring objects in."),
                detail_input(),
            ],
            outputs=[io.Mask.Output(display_name="alpha", tooltip="One alpha per frame at the frames' size. "
                                    + ALPHA_TOOLTIP),
                     io.String.Output(display_name="report",
                                      tooltip="Frames matted, where the subject was lost (cuts, exits, jumps) and "
                                              "which frames were prompted. Connect Preview Any to read it.")],
        )

    @classmethod
    def execute(cls, model, frames, prompt_frame: int, transparent: bool, resolution: int, resize: str,
                focus: str, margin: float, motion_margin: float, prompt=None, keyframes=None,
                caption: str = "", detail: str = "guided") -> io.NodeOutput:
        from ..matting.follow import as_form, follow, followed_form  # noqa: PLC0415

        if resize not in RESIZE or focus not in FOCUS or detail not in DETAIL_MODES:
            raise PromptError(f"resize must be one of {list(RESIZE)}, focus one of {list(FOCUS)} and detail one of "
                              f"{list(DETAIL_MODES)}")
        if frames.dim() != 4 or frames.shape[0] < 1:
            raise PromptError(f"the frames have shape {tuple(frames.shape)}; connect an IMAGE batch (frames, "
                              "height, width, 3), e.g. from Get Video Components")
        n, height, width = (int(v) for v in frames.shape[:3])
        net = network(model)
        accepted = tuple(getattr(net, "prompt_kinds", ()))
        anchors = collect_anchors(prompt, prompt_frame, keyframes, n, (height, width))
        first_kind = anchors[prompt_frame][0].kind if prompt is not None else (
            anchors[min(anchors)][0].kind if anchors else "auto")
        form = followed_form(first_kind, accepted)
        pixels = motion_margin * max(height, width)
        anchors = {t: (as_form(p, accepted, form, pixels), kind) for t, (p, kind) in anchors.items()}
        refuse_unsupported_kinds(net, [p for p, _ in anchors.values()])

        options = (prompt_frame, transparent, resolution, resize, focus, margin, caption, motion_margin, detail)
        key = _fingerprint(model, frames, anchors, options)
        out, done = _unfinished.pop(key, (None, None))
        _unfinished.clear()  # only the latest unfinished run is kept
        if out is None:
            out = torch.zeros(n, height, width, dtype=torch.float32, device=mm.intermediate_device())
            done = torch.zeros(n, dtype=torch.bool)
        matte_frame = frame_matter(model, height, width, transparent=transparent, resolution=resolution,
                                   resize=RESIZE[resize], focus=FOCUS[focus], margin=margin, caption=caption,
                                   detail=detail)
        bar = comfy.utils.ProgressBar(n)

        def on_frame(finished, total):
            bar.update_absolute(finished, total)
            mm.throw_exception_if_processing_interrupted()  # Cancel stops between frames

        try:
            alpha, report = follow(matte_frame, frames, anchors, form=form, margin=pixels, out=out, done=done,
                                   on_frame=on_frame)
        except BaseException:
            if bool(done.any()):
                _unfinished[key] = (out, done)  # queue the same graph again to go on from here
            raise
        shown = min(max(int(prompt_frame), 0), n - 1)
        text = report.text()
        return io.NodeOutput(alpha, text, ui={"promptmatte_alpha": [alpha_preview(alpha[shown:shown + 1])],
                                              "promptmatte_report": [text]})


class PromptMatteKeyframe(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteKeyframe",
            display_name="Matte Keyframe",
            category=CATEGORY,
            description="A prompt on one frame of a clip, for Matting (video)'s keyframes; chain several.",
            inputs=[
                MattePromptType.Input("prompt", tooltip="One prompt drawn on that frame (e.g. a Matte Prompt "
                                                        "Editor on the frame, or a box from a detector)."),
                io.Int.Input("frame", default=0, min=0, max=1_000_000, tooltip="The frame it belongs to (0 = first)."),
                MatteKeyframesType.Input("keyframes", optional=True,
                                         tooltip="Keyframes on other frames to add this one to (a chain)."),
            ],
            outputs=[MatteKeyframesType.Output(display_name="keyframes",
                                               tooltip="The chain, for Matting (video)'s keyframes input.")],
        )

    @classmethod
    def execute(cls, prompt, frame: int, keyframes=None) -> io.NodeOutput:
        earlier = [kf for kf in (keyframes or []) if kf[0] != int(frame)]  # a later link on a frame wins
        return io.NodeOutput(earlier + [(int(frame), list(prompt))])
