"""``python -m <pack>.batch``: matte a folder, a glob or a video's frames headless, here or on Ray.

See ``--help`` and the README's "Batch and clusters". Exit status: 0 when every input was matted (or
already done), 1 when some failed (listed in ``OUT/failures.jsonl``), 2 when the job could not
start (the message says why), 130 when interrupted (what was written is kept; run again to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .inputs import JobError, list_inputs, prompt_kinds, prompt_rows
from .runner import RayMissing, import_ray, run_local, run_ray
from .sink import FAILURES_FILE, OutputFolder
from .work import BatchWorker, inspect_model, unsupported_kind_message

# The pipeline's own names (matting.pipeline, matting.detail), written out so that --help imports no torch.
RESIZE_MODES = ("stretch", "keep_aspect")
FOCUS_MODES = ("whole", "crop")
DETAIL_MODES = ("off", "guided", "refine")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m <pack>.batch",
        description="Matte many images (a folder, a glob or the frames of a video) with any PromptMatte family, "
                    "without ComfyUI: one alpha PNG per input in --out, optionally the RGBA cut-out and the "
                    "foreground colours. Locally by default; with --ray on a Ray cluster (one model per actor). "
                    "A rerun skips finished inputs and redoes partial ones; inputs that fail are listed in "
                    f"OUT/{FAILURES_FILE} and the others carry on.",
        epilog="Exit status: 0 all inputs matted, 1 some failed (see failures.jsonl), 2 the job could not start, "
               "130 interrupted (run the same command again to resume).",
    )
    g = p.add_argument_group("what to matte")
    g.add_argument("--model", required=True,
                   help="weights file of any family (.safetensors, .pth, ...; the family is read from the file). "
                        "A companion file (MAM's SAM checkpoint, SIM's classifier) is looked for beside it and "
                        "in ComfyUI's models/sams, models/matting, models/sdmatte next to its folder")
    g.add_argument("--companion", default=None,
                   help="the companion file to use instead of looking for it (MAM: a SAM checkpoint; SIM: its "
                        "classifier)")
    g.add_argument("--input", required=True,
                   help="a folder of images, a quoted glob ('shots/**/*.jpg'), one image, or a video file (one "
                        "input per frame, named <video>_<frame:06d>)")
    g.add_argument("--prompt", default="auto",
                   help="'auto' (no prompt, default; for families that take it: SDMatte, SEMat, AIM); a folder "
                        "of masks or trimaps named like the inputs (matched by file name without extension); or "
                        'a .jsonl file, one line per input: {"stem": "cat", "points": [[x, y], ...]} or '
                        '{"stem": "cat", "box": [x1, y1, x2, y2]} in pixels ("stem": "*" for all inputs '
                        "without their own line)")
    g.add_argument("--prompt-as", choices=("mask", "trimap"), default=None,
                   help="what the files of a prompt folder are: mask (1 = subject; default) or trimap "
                        "(0 / 128 / 255; the default for SIM, which takes trimaps only)")
    g = p.add_argument_group("what to write")
    g.add_argument("--out", required=True, type=Path,
                   help="output folder: <stem>.png alphas (grey, 255 = foreground), batch.json (the settings), "
                        f"{FAILURES_FILE}")
    g.add_argument("--alpha-16bit", action="store_true", help="write 16-bit grey alphas instead of 8-bit")
    g.add_argument("--rgba", action="store_true",
                   help="also write the cut-out as RGBA PNGs in OUT/rgba/ (foreground colours and alpha, as "
                        "Matte Composite's rgba output saved by Save Image)")
    g.add_argument("--foreground", action="store_true",
                   help="also write the decontaminated foreground colours as RGB PNGs in OUT/foreground/ (as "
                        "Matte Composite's foreground output)")
    g = p.add_argument_group("how to matte (as the Matting node's inputs)")
    g.add_argument("--resolution", type=int, default=1024,
                   help="SDMatte's working size, a multiple of 64 (default 1024); other families resize as their "
                        "authors do")
    g.add_argument("--resize", choices=RESIZE_MODES, default="stretch",
                   help="SDMatte: stretch to resolution² as the authors (default) or keep_aspect")
    g.add_argument("--focus", choices=FOCUS_MODES, default="whole",
                   help="whole image (default) or crop: matte a crop around the prompt at full working size")
    g.add_argument("--margin", type=float, default=0.1,
                   help="with --focus crop: border around the prompt, a fraction of its size (default 0.1)")
    g.add_argument("--transparent", action="store_true", help="SDMatte's transparent-object flag on every input")
    g.add_argument("--detail", choices=DETAIL_MODES, default="guided",
                   help="how the alpha reaches an image larger than the model's working size, as the Matting "
                        "node's 'detail': guided (default; a guided filter led by the full-resolution image in "
                        "the uncertain band), refine (that, then the model again on full-resolution tiles along "
                        "the edges) or off (resized back, as the authors). Images at or below the working size "
                        "are the same with every option")
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="precision of the main weights (default fp32, as the authors)")
    g.add_argument("--device", default="auto",
                   help="cpu, cuda or cuda:N for every worker (default auto: cuda where the worker sees a GPU)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per worker (default: all cores locally, --cpus-per-actor on Ray). Runs "
                        "with the same value give bit-identical files; CPU sums may differ in the last bits "
                        "between thread counts")
    g = p.add_argument_group("Ray (optional: pip install -r requirements-batch.txt)")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray Data: without ADDRESS start a local Ray on this machine; with one "
                        "(e.g. ray://head:10001 or head:6379, or 'auto' for the cluster this node is part of) "
                        "join that cluster. Inputs, prompts and the model must be at the same paths on every "
                        "node; the files are written here, by this process")
    g.add_argument("--actors", type=int, default=1,
                   help="Ray actors, each holding one loaded model (default 1)")
    g.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs Ray reserves per actor (default 1)")
    g.add_argument("--gpus-per-actor", type=float, default=0.0,
                   help="GPUs Ray reserves per actor (default 0; 0.5 puts two actors on one GPU)")
    g = p.add_argument_group("output on the terminal")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def settings_from(args) -> dict:
    model = Path(args.model).resolve()
    return {
        "model": str(model),
        "model_bytes": model.stat().st_size if model.is_file() else None,
        "companion": str(Path(args.companion).resolve()) if args.companion else None,
        "device": args.device,
        "precision": args.precision,
        "threads": args.threads,
        "resolution": args.resolution,
        "resize": args.resize,
        "focus": args.focus,
        "margin": args.margin,
        "transparent": bool(args.transparent),
        "detail": args.detail,
        "alpha_bits": 16 if args.alpha_16bit else 8,
        "rgba": bool(args.rgba),
        "foreground": bool(args.foreground),
        "input": str(args.input),
        "prompt": str(args.prompt),
        "prompt_as": args.prompt_as,
    }


def check_arguments(args) -> None:
    if args.resolution < 64 or args.resolution % 64:
        raise JobError(f"--resolution {args.resolution} must be a multiple of 64 (e.g. 512, 1024)")
    if not args.margin >= 0:
        raise JobError(f"--margin {args.margin} must be 0 or more")
    if not Path(args.model).exists():
        raise JobError(f"the model {args.model} does not exist")
    if args.companion and not Path(args.companion).is_file():
        raise JobError(f"the companion file {args.companion} does not exist")
    if args.actors < 1 or args.cpus_per_actor <= 0 or args.gpus_per_actor < 0:
        raise JobError("--actors must be at least 1, --cpus-per-actor above 0 and --gpus-per-actor 0 or more")
    if args.threads is not None and args.threads < 1:
        raise JobError(f"--threads {args.threads} must be at least 1")


def plan(args):
    """(rows, settings) of the job, checked against the model's family before any model loads."""
    from ..models.errors import CheckpointError

    check_arguments(args)
    try:
        family = inspect_model(str(Path(args.model).resolve()), args.companion)
    except CheckpointError as e:
        raise JobError(f"cannot use {args.model}: {e}") from None
    if args.prompt_as is None:
        args.prompt_as = "trimap" if "trimap" in family.prompt_kinds and "mask" not in family.prompt_kinds else "mask"
    rows = list_inputs(args.input)
    prompt_rows(args.prompt, rows, args.prompt_as)
    kinds = prompt_kinds(rows)
    if kinds and not kinds & set(family.prompt_kinds):
        kind = sorted(kinds)[0]
        raise JobError(unsupported_kind_message(family.title, kind, family.prompt_kinds))
    settings = settings_from(args)
    if args.ray is not None and settings["threads"] is None:
        settings["threads"] = max(1, int(args.cpus_per_actor))
    return rows, settings, family


def run(args) -> int:
    if args.ray is not None:
        import_ray()  # a missing Ray stops the job before anything is read
    rows, settings, family = plan(args)
    sink = OutputFolder(args.out, settings)
    sink.open()
    try:
        todo = [row for row in rows if not sink.is_done(row["stem"])]
        print(f"{len(rows)} inputs: {len(rows) - len(todo)} done already in {args.out} (skipped), {len(todo)} to "
              f"matte with {family.title}" + (" on Ray" if args.ray is not None else ""), file=sys.stderr, flush=True)
        timing = None
        if todo:
            if args.ray is None:
                timing = run_local(todo, BatchWorker, settings, sink.accept, progress=not args.quiet)
            else:
                timing = run_ray(todo, BatchWorker, settings, sink.accept, address=args.ray or None,
                                  actors=args.actors, num_cpus=args.cpus_per_actor, num_gpus=args.gpus_per_actor,
                                  progress=not args.quiet)
    finally:
        sink.close()
    took = f" {timing.summary(len(todo))}" if timing is not None else ""
    print(f"done: {sink.written} written, {len(rows) - len(todo)} skipped, {len(sink.failed)} failed{took}",
          file=sys.stderr, flush=True)
    if sink.failed:
        for record in sink.failed[:10]:
            print(f"  {record['stem']}: {record['reason']}", file=sys.stderr)
        more = f" ({len(sink.failed) - 10} more)" if len(sink.failed) > 10 else ""
        print(f"failures{more} are listed in {Path(args.out) / FAILURES_FILE}; fix them and run the same command "
              "again (finished inputs are skipped)", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (JobError, RayMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the files written so far are kept; run the same command again to resume",
              file=sys.stderr)
        return 130

