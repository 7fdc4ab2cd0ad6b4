"""Video matting: prompt one frame, follow the subject through the clip.

A driver of the one-image pipeline: ``follow`` calls ``matte_frame(frame, prompt)`` once per frame
and decides which prompt each call gets. The frames where the user gave a prompt (the prompt frame
and the keyframes) are *anchors*. Frames before the first anchor are followed backwards from it;
every other frame forwards from the last anchor before it (a keyframe replaces the followed
prompt from its frame on). A followed frame is prompted with its neighbour's alpha in the form its
family takes (:func:`followed_form`, :func:`matting.alpha_prompt.prompt_from_alpha`): a mask, a
box or a trimap with ``margin`` pixels of room for the motion; automatic families get no prompt.

Following stops, and the frames after it are left empty (alpha 0) until the next anchor, when:

* **cut**: the frame's colour histogram differs from its neighbour's by more than ``CUT_DISTANCE``
  (total variation distance of a 4×4×4-bin RGB histogram): a new shot, where the old prompt would
  point at whatever now stands there;
* **lost**: the followed alpha covers less than ``LOST_FRACTION`` of the area it had on the last
  anchor (the subject left the frame or is hidden);
* **jump**: more than ``JUMP_OUTSIDE`` of the followed alpha lies outside its neighbour's alpha's
  box grown by twice the margin, or its area grows more than ``JUMP_FACTOR`` times in one frame (the
  model took another object); that frame's alpha is discarded.

Every event is reported (:class:`FollowReport`): the node never silently mattes the wrong object.
Automatic families matte every frame on their own; their cuts and empty frames are reported only.

Streaming: one frame goes to the model at a time; the driver keeps the output alphas, its
neighbour's alpha and a histogram, so memory is the frames + the alphas + one model pass whatever
the clip's length. ``done`` (frames already matted, e.g. by an interrupted run) are not matted
again: their stored alphas are replayed through the same rules, so a resumed run ends with the
alphas of an uninterrupted one (a discarded jump replays as a loss in the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .alpha_prompt import alpha_box, grow_box, prompt_from_alpha
from .errors import PromptError
from .prompt import Prompt

CUT_DISTANCE = 0.5
LOST_FRACTION = 0.1
JUMP_OUTSIDE = 0.5
JUMP_FACTOR = 3.0
THRESHOLD = 0.5  # alpha above this is "the subject" for areas, boxes and masks
HISTOGRAM_BINS = 4  # per channel
HISTOGRAM_PIXELS = 1 << 16  # frames are subsampled to about this many pixels for the histogram


def followed_form(prompt_kind: str, accepted: tuple) -> str:
    """The form a family is followed in: the user's prompt kind when it is a mask, a box or a
    trimap the family takes; for clicks a mask if the family takes masks, else a box; "auto"
    for a family (or a run) without prompts."""
    accepted = tuple(accepted)
    if prompt_kind == "auto" or not any(k in accepted for k in ("mask", "box", "trimap")):
        return "auto"
    if prompt_kind in ("mask", "box", "trimap") and prompt_kind in accepted:
        return prompt_kind
    for form in ("mask", "box", "trimap"):
        if form in accepted:
            return form
    return "auto"


def as_form(prompt: Prompt, accepted: tuple, form: str, margin: float) -> Prompt:
    """A user's prompt as the family takes it: itself when the family takes its kind; a mask
    (e.g. a SAM 2 keyframe) turned into the followed form otherwise."""
    if prompt.kind in accepted:
        return prompt
    if prompt.kind == "mask" and form in ("box", "trimap"):
        return prompt_from_alpha(prompt.mask, form, 0 if form == "box" else margin)
    return prompt  # refused by the caller with a message naming what the family takes


def colour_histogram(frame: torch.Tensor) -> torch.Tensor:
    """Normalised joint RGB histogram (HISTOGRAM_BINS³,) of a (H, W, 3) frame in [0, 1]."""
    h, w = frame.shape[:2]
    step = max(1, int((h * w / HISTOGRAM_PIXELS) ** 0.5))
    px = frame[::step, ::step, :3].reshape(-1, 3).float().clamp(0, 1)
    q = (px * HISTOGRAM_BINS).long().clamp_(max=HISTOGRAM_BINS - 1)
    index = (q[:, 0] * HISTOGRAM_BINS + q[:, 1]) * HISTOGRAM_BINS + q[:, 2]
    counts = torch.bincount(index, minlength=HISTOGRAM_BINS ** 3).double()
    return counts / counts.sum()


def histogram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total variation distance, 0 (same colours) to 1 (no colour in common)."""
    return float(0.5 * (a - b).abs().sum())


@dataclass
class Event:
    frame: int
    what: str  # "cut", "lost", "jump", "exit" (touches the border), "back" (in full view again),
    # "empty" (a prompted frame gave nothing), "nothing" (automatic: no subject found)
    detail: str


@dataclass
class FollowReport:
    n_frames: int
    form: str
    margin: float
    anchors: dict = field(default_factory=dict)  # frame -> "prompt" | "keyframe"
    matted: list = field(default_factory=list)  # frames the model matted (or that a resumed run had)
    skipped: list = field(default_factory=list)  # frames left empty: the subject was not followed there
    events: list = field(default_factory=list)
    resumed: int = 0  # frames taken over from an interrupted run

    @property
    def lost_frames(self) -> list:
        return [e.frame for e in self.events if e.what in ("cut", "lost", "jump")]

    def text(self) -> str:
        how = ("each frame matted on its own (automatic)" if self.form == "auto" else
               f"followed as a {self.form} with a motion margin of {self.margin:g} px")
        lines = [f"{self.n_frames} frames, {how}."]
        lines.append("Prompted: " + (", ".join(f"frame {f} ({k})" for f, k in sorted(self.anchors.items()))
                                     or "none") + ".")
        lines.append(f"Matted: {_spans(self.matted)} ({len(self.matted)} frames).")
        if self.skipped:
            lines.append(f"Not matted (subject not followed there, alpha 0): {_spans(self.skipped)} "
                         f"({len(self.skipped)} frames); add a keyframe where it is visible again.")
        if self.resumed:
            lines.append(f"Resumed: {self.resumed} frames kept from the interrupted run.")
        if self.events:
            lines.append("Events:")
            lines += [f"  frame {e.frame}: {e.detail}" for e in sorted(self.events, key=lambda e: e.frame)]
        else:
            lines.append("Events: none (no cut, the subject stayed in view).")
        return "\n".join(lines)


def _spans(frames) -> str:
    frames = sorted(frames)
    if not frames:
        return "none"
    out, start, prev = [], frames[0], frames[0]
    for f in frames[1:] + [None]:
        if f is not None and f == prev + 1:
            prev = f
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    return ", ".join(out)


def _area(alpha: torch.Tensor) -> int:
    return int((alpha > THRESHOLD).sum())


def follow(
    matte_frame: Callable[[torch.Tensor, Prompt], torch.Tensor],
    frames: torch.Tensor,
    anchors: Mapping[int, tuple],
    *,
    form: str,
    margin: float,
    out: torch.Tensor | None = None,
    done: torch.Tensor | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, FollowReport]:
    """Alphas (N, H, W) for frames (N, H, W, 3), and the report.

    ``anchors``: frame -> (prompt in the family's form, "prompt" | "keyframe"); at least one, or
    none with ``form`` "auto". ``matte_frame(frames[t:t+1], prompt)`` returns the (H, W) alpha.
    ``out`` / ``done``: the alphas and the (N,) bool of frames already matted (resuming);
    ``done`` is updated as frames finish, and ``on_frame(finished, total)`` is called after each.
    """
    n, height, width = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    anchors = dict(anchors)
    for t in anchors:
        if not 0 <= t < n:
            raise PromptError(f"a prompt is on frame {t}, but the clip has frames 0 to {n - 1}; "
                              "set prompt_frame (or the keyframe's frame) within the clip")
    if not anchors and form != "auto":
        raise PromptError("no prompt to follow: give a prompt on one frame (prompt and prompt_frame)")
    if out is None:
        out = torch.zeros(n, height, width, dtype=torch.float32)
    if done is None:
        done = torch.zeros(n, dtype=torch.bool)
    report = FollowReport(n_frames=n, form=form, margin=float(margin),
                          anchors={t: kind for t, (_, kind) in anchors.items()},
                          resumed=int(done.sum()))
    first = min(anchors) if anchors else 0
    order = [(t, t - 1) for t in range(first, n)] + [(t, t + 1) for t in range(first - 1, -1, -1)]
    histograms: dict[int, torch.Tensor] = {}

    def histogram(t):  # only a frame and its neighbour's are kept
        if t not in histograms:
            if len(histograms) > 2:
                histograms.clear()
            histograms[t] = colour_histogram(frames[t])
        return histograms[t]

    following = False  # a followed prompt is being carried
    at_edge = False  # the subject's alpha touches the frame's border (partly out of the frame)
    reference_area = 0  # the subject's area on the last anchor
    finished = 0
    for t, neighbour in order:
        if t == first:
            neighbour = None  # the first anchor has no neighbour to follow from
        if t == first - 1:  # turning back: follow backwards from the first anchor
            following = form != "auto" and _area(out[first]) > 0
            at_edge = bool(_edges(out[first]))
            reference_area = _area(out[first])
        cut = None
        if neighbour is not None:
            distance = histogram_distance(histogram(t), histogram(neighbour))
            if distance > CUT_DISTANCE:
                cut = distance
        anchor = anchors.get(t)
        if cut is not None:
            stops = anchor is None and form != "auto" and following
            report.events.append(Event(t, "cut", f"scene cut (colour change {cut:.2f} from frame {neighbour})"
                                       + (": the subject is not followed across a cut" if stops else "")))
            if stops:
                following = False
        if anchor is not None:
            prompt = anchor[0]
        elif form == "auto":
            prompt = Prompt.auto()
        elif following:
            prompt = prompt_from_alpha(out[neighbour], form, margin, THRESHOLD)
        else:
            prompt = None

        if prompt is None:
            out[t] = 0
            report.skipped.append(t)
            following = False
        else:
            if not bool(done[t]):
                out[t] = matte_frame(frames[t: t + 1], prompt)
            report.matted.append(t)
            area = _area(out[t])
            if anchor is not None:
                following = form != "auto" and area > 0
                reference_area = area
                if area == 0:
                    report.events.append(Event(t, "empty", f"the {anchor[1]} on this frame gave an empty alpha: "
                                                           "nothing to follow from it"))
            elif form == "auto":
                if area == 0:
                    report.events.append(Event(t, "nothing", "the model found no subject"))
            elif area < LOST_FRACTION * reference_area:
                report.events.append(Event(
                    t, "lost", f"subject lost: its alpha covers {100 * area / max(reference_area, 1):.0f} % "
                               "of its area on the prompted frame (it left the frame or is hidden)"))
                following = False
            elif jump := _jump(out[t], out[neighbour], margin):
                report.events.append(Event(t, "jump", f"the alpha jumped ({jump}): discarded, "
                                                      "the subject is not followed further"))
                out[t] = 0
                report.matted.pop()
                report.skipped.append(t)
                following = False
        matted = bool(report.matted) and report.matted[-1] == t
        edges = _edges(out[t]) if matted else ""
        if edges and not at_edge:
            report.events.append(Event(t, "exit", f"the subject reaches the {edges} edge of the frame "
                                                  "(partly out of view)"))
        elif at_edge and not edges and matted and _area(out[t]) > 0:
            report.events.append(Event(t, "back", "the subject is back in full view"))
        at_edge = bool(edges)
        done[t] = True
        finished += 1
        if on_frame is not None:
            on_frame(finished, n)
    return out, report


def _edges(alpha: torch.Tensor) -> str:
    """Which borders of the frame the subject's alpha touches ("left and top"), or ""."""
    core = alpha > THRESHOLD
    names = [name for name, line in (("left", core[:, 0]), ("right", core[:, -1]), ("top", core[0]),
                                     ("bottom", core[-1])) if bool(line.any())]
    return " and ".join(names)


def _jump(alpha: torch.Tensor, previous: torch.Tensor, margin: float) -> str:
    """Why ``alpha`` is not the subject of ``previous`` one frame on, or "" if it may be."""
    now, before = _area(alpha), _area(previous)
    if now == 0 or before == 0:
        return ""
    if now > JUMP_FACTOR * before:
        return f"its area went from {before} to {now} px in one frame"
    # Where the subject can be now: the previous alpha's box grown by twice the margin (a box, not
    # the dilated shape: this check runs on every frame and must cost little next to the model).
    x1, y1, x2, y2 = (int(round(v)) for v in grow_box(alpha_box(previous, THRESHOLD), 2 * margin,
                                                       *previous.shape))
    core = alpha > THRESHOLD
    outside = float(now - int(core[y1:y2, x1:x2].sum())) / now
    if outside > JUMP_OUTSIDE:
        return f"{100 * outside:.0f} % of it lies away from where the subject was"
    return ""


__all__ = ["CUT_DISTANCE", "Event", "FollowReport", "JUMP_FACTOR", "JUMP_OUTSIDE", "LOST_FRACTION",
           "as_form", "colour_histogram", "follow", "followed_form", "histogram_distance"]
