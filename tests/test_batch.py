"""The headless batch command (``python -m <pack>.batch``), locally and on a Ray local cluster.

One reference run (20 small images, the tiny SDMatte golden model, alphas + RGBA + foreground) is
made once; a Ray run with 2 actors, a Ray run with an actor killed in the middle and a local run
killed with SIGKILL and rerun must each end with exactly its files. Ray is started once for the
module (2 CPUs, 1 per actor), in this process, and the command joins it.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.golden]

COMMON = ["--resolution", "64", "--threads", "1", "--rgba", "--foreground", "--quiet"]
N_IMAGES = 20


def _model(golden_dir) -> str:
    return str(golden_dir / "sdmatte_tiny" / "model.safetensors")


def _write_images(folder: Path, n: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = 40 + 4 * (i % 5), 48 + 8 * (i % 3)
        yy, xx = np.mgrid[:h, :w]
        disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2)[..., None]
        pixels = np.where(disc, [220, 120, 40], [30, 90, 200]) + rng.integers(-20, 20, (h, w, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"im{i:02d}.png")
    return folder


def _files(folder: Path) -> dict:
    """{relative path: bytes} of the outputs (PNGs), leftovers included, settings and logs left out."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("batch.json", "failures.jsonl")}


@pytest.fixture(scope="module")
def cli(pack):
    return importlib.import_module(f"{pack.__name__}.batch.cli")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("batch-in") / "images", N_IMAGES)


@pytest.fixture(scope="module")
def reference(cli, golden_dir, images, tmp_path_factory):
    """The uninterrupted local run every other run must equal, file for file."""
    out = tmp_path_factory.mktemp("batch-ref") / "out"
    code = cli.main(["--model", _model(golden_dir), "--input", str(images), "--out", str(out), *COMMON])
    assert code == 0
    return out


def _run_command(pack, *args, timeout=300, wait=True):
    holder = str(Path(pack.__file__).parent.parent)  # the folder that holds the pack, as a user runs it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", f"{pack.__name__}.batch", *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, cwd=holder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=holder, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- local


def test_local_run_writes_alphas_and_cutouts_and_a_rerun_skips_them(cli, reference, images, golden_dir, capsys):
    files = _files(reference)
    stems = [f"im{i:02d}" for i in range(N_IMAGES)]
    assert sorted(files) == sorted([f"{s}.png" for s in stems] + [f"rgba/{s}.png" for s in stems]
                                   + [f"foreground/{s}.png" for s in stems])
    for stem in stems:
        with Image.open(images / f"{stem}.png") as src, Image.open(reference / f"{stem}.png") as alpha, \
                Image.open(reference / "rgba" / f"{stem}.png") as rgba, \
                Image.open(reference / "foreground" / f"{stem}.png") as fg:
            assert alpha.mode == "L" and rgba.mode == "RGBA" and fg.mode == "RGB"
            assert alpha.size == rgba.size == fg.size == src.size
            # the cut-out is the foreground colours under the alpha
            assert np.array_equal(np.asarray(rgba)[..., 3], np.asarray(alpha))
            assert np.array_equal(np.asarray(rgba)[..., :3], np.asarray(fg))
    assert (reference / "failures.jsonl").read_text() == ""
    assert json.loads((reference / "batch.json").read_text())["alpha_bits"] == 8

    mtimes = {p: p.stat().st_mtime_ns for p in reference.rglob("*.png")}
    capsys.readouterr()
    code = cli.main(["--model", _model(golden_dir), "--input", str(images), "--out", str(reference), *COMMON])
    err = capsys.readouterr().err
    assert code == 0 and f"{N_IMAGES} inputs: {N_IMAGES} done already" in err and "0 to matte" in err
    assert {p: p.stat().st_mtime_ns for p in reference.rglob("*.png")} == mtimes


@pytest.mark.slow
def test_a_local_run_killed_with_sigkill_resumes_to_the_same_bytes(pack, reference, images, golden_dir, tmp_path):
    out = tmp_path / "out"
    proc = _run_command(pack, "--model", _model(golden_dir), "--input", images, "--out", out, *COMMON, wait=False)
    deadline = time.monotonic() + 240
    while len(list(out.glob("*.png"))) < 4:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run wrote nothing in 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done_at_kill = len(list(out.glob("*.png")))
    assert done_at_kill < N_IMAGES, "the run finished before it was killed: nothing was tested"
    for png in out.rglob("*.png"):  # whatever carries a final name is whole
        with Image.open(png) as im:
            im.load()

    again = _run_command(pack, "--model", _model(golden_dir), "--input", images, "--out", out, *COMMON)
    assert again.returncode == 0, again.stderr[-3000:]
    skipped = int(again.stderr.split(" done already")[0].rsplit(" ", 1)[-1])
    assert skipped >= 3  # the alphas were written last: at least all but the one in flight were complete
    assert _files(out) == _files(reference)


def test_bad_inputs_land_in_failures_jsonl_and_the_rest_carry_on(cli, golden_dir, tmp_path, capsys):
    inputs = _write_images(tmp_path / "in", 3)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(inputs / "tiny.png")
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(inputs / "offbox.png")
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(inputs / "unprompted.png")
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"stem": "im00", "box": [5, 5, 30, 30]}, {"stem": "im01", "points": [[10, 12], [20, 20]]},
             {"stem": "im02", "points": [{"x": 24, "y": 20}]}, {"stem": "broken", "box": [0, 0, 8, 8]},
             {"stem": "tiny", "box": [0, 0, 2, 2]}, {"stem": "offbox", "box": [100, 100, 120, 120]}]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    code = cli.main(["--model", _model(golden_dir), "--input", str(inputs), "--prompt", str(prompts),
                     "--out", str(out), "--resolution", "64", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    failures = {r["stem"]: r for r in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert sorted(failures) == ["broken", "offbox", "tiny", "unprompted"]
    assert "cannot be read as an image" in failures["broken"]["reason"]
    assert failures["broken"]["input"] == str((inputs / "broken.png").resolve())
    assert "4×4" in failures["tiny"]["reason"] and "at least 8×8" in failures["tiny"]["reason"]
    assert "lies outside the 48×40 image" in failures["offbox"]["reason"]
    assert "no line for 'unprompted'" in failures["unprompted"]["reason"]
    assert sorted(p.name for p in out.glob("*.png")) == ["im00.png", "im01.png", "im02.png"]
    assert "3 written" in err and "4 failed" in err and "failures.jsonl" in err

    # a rerun retries only the failed inputs and lists them again
    code = cli.main(["--model", _model(golden_dir), "--input", str(inputs), "--prompt", str(prompts),
                     "--out", str(out), "--resolution", "64", "--quiet"])
    assert code == 1 and "3 done already" in capsys.readouterr().err
    assert len((out / "failures.jsonl").read_text().splitlines()) == 4


def test_a_folder_of_masks_or_trimaps_is_matched_by_stem(cli, golden_dir, tmp_path, capsys):
    inputs = _write_images(tmp_path / "in", 3)  # 40×48, 44×56, 48×64
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, (h, w) in enumerate([(40, 48), (44, 56)]):
        levels = np.zeros((h, w), np.uint8)
        levels[10:30, 12:36] = 255
        Image.fromarray(levels).save(masks / f"im{i:02d}.png")
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(masks / "im02.png")  # not the image's size
    for form, extra in (("mask", []), ("trimap", ["--prompt-as", "trimap"])):
        out = tmp_path / form
        code = cli.main(["--model", _model(golden_dir), "--input", str(inputs), "--prompt", str(masks),
                         "--out", str(out), "--resolution", "64", "--quiet", *extra])
        assert code == 1, capsys.readouterr().err
        assert sorted(p.name for p in out.glob("*.png")) == ["im00.png", "im01.png"]
        (failure,) = map(json.loads, (out / "failures.jsonl").read_text().splitlines())
        assert failure["stem"] == "im02"
        assert f"the {form} {masks / 'im02.png'} is 10×10 but the image is 64×48" in failure["reason"]
    # a mask and a trimap of the same file are different prompts
    assert (tmp_path / "mask" / "im00.png").read_bytes() != (tmp_path / "trimap" / "im00.png").read_bytes()


def test_jobs_that_cannot_start_stop_with_a_message(cli, golden_dir, images, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"stem": "im00", "box": [1, 2, 3]}\n')
    code = cli.main(["--model", _model(golden_dir), "--input", str(images), "--prompt", str(bad),
                     "--out", str(tmp_path / "o1")])
    assert code == 2 and "line 1: the box must be four numbers" in capsys.readouterr().err
    import torch
    from safetensors.torch import save_file

    save_file({"linear.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    code = cli.main(["--model", str(tmp_path / "other.safetensors"), "--input", str(images),
                     "--out", str(tmp_path / "o2")])
    assert code == 2 and "not a matting checkpoint" in capsys.readouterr().err
    code = cli.main(["--model", _model(golden_dir), "--input", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o3")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    # other settings into a folder made with these are refused, not mixed
    out = tmp_path / "o4"
    assert cli.main(["--model", _model(golden_dir), "--input", str(images / "im00.png"), "--out", str(out),
                     "--resolution", "64", "--quiet"]) == 0
    code = cli.main(["--model", _model(golden_dir), "--input", str(images / "im00.png"), "--out", str(out),
                     "--resolution", "128", "--quiet"])
    assert code == 2 and "resolution: 64 -> 128" in capsys.readouterr().err


def test_a_video_is_matted_frame_by_frame_as_its_frames_would_be(cli, golden_dir, tmp_path):
    import av

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    video = tmp_path / "clip.mkv"
    with av.open(str(video), "w") as container:  # lossless, so the decoded frames are these pixels
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "bgr0"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    stills = tmp_path / "stills"
    stills.mkdir()
    for i, pixels in enumerate(frames):
        Image.fromarray(pixels).save(stills / f"clip_{i:06d}.png")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"stem": "*", "box": [8, 6, 40, 34]}\n')
    args = ["--model", _model(golden_dir), "--prompt", str(prompts), "--resolution", "64", "--threads", "1",
            "--alpha-16bit", "--quiet"]
    assert cli.main(["--input", str(video), "--out", str(tmp_path / "v"), *args]) == 0
    assert cli.main(["--input", str(stills), "--out", str(tmp_path / "s"), *args]) == 0
    names = [f"clip_{i:06d}.png" for i in range(3)]
    assert sorted(_files(tmp_path / "v")) == names
    assert _files(tmp_path / "v") == _files(tmp_path / "s")
    with Image.open(tmp_path / "v" / names[0]) as alpha:
        assert alpha.mode == "I;16" and alpha.size == (48, 40)


def test_help_documents_every_flag(pack):
    done = _run_command(pack, "--help", timeout=120)
    assert done.returncode == 0
    parser = importlib.import_module(f"{pack.__name__}.batch.cli").parser()
    flags = [a for a in parser._actions if a.option_strings]
    assert len(flags) >= 20
    for action in flags:
        assert action.help and len(action.help) > 10, f"{action.option_strings} has no help"
        assert any(option in done.stdout for option in action.option_strings), action.option_strings
    for word in ("--ray", "ADDRESS", "--actors", "failures.jsonl", "Exit status"):
        assert word in done.stdout
    # the choices --help shows without importing torch are the pipeline's own
    cli = importlib.import_module(f"{pack.__name__}.batch.cli")
    assert cli.DETAIL_MODES == importlib.import_module(f"{pack.__name__}.matting.detail").DETAIL_MODES
    assert cli.RESIZE_MODES == importlib.import_module(f"{pack.__name__}.matting.pipeline").RESIZE_MODES
    assert cli.FOCUS_MODES == importlib.import_module(f"{pack.__name__}.matting.pipeline").FOCUS_MODES


def test_without_ray_the_ray_flag_names_the_install_command(pack, golden_dir, images, tmp_path):
    script = (f"import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
              f"from {pack.__name__}.batch.cli import main\n"
              f"sys.exit(main(['--model', {_model(golden_dir)!r}, '--input', {str(images)!r}, "
              f"'--out', {str(tmp_path / 'o')!r}, '--ray']))\n")
    holder = str(Path(pack.__file__).parent.parent)
    done = subprocess.run([sys.executable, "-c", script], cwd=holder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "needs Ray" in done.stderr and "pip install -r requirements-batch.txt" in done.stderr
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _actor_processes() -> list:
    """The processes of the command's Ray actors (Ray titles them after the callable class)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("ray::MapWorker(MapBatches(RayWorker))"):
            found.append(proc)
    return found


@pytest.mark.slow
def test_a_ray_run_with_an_actor_killed_writes_the_files_of_the_local_run(cli, ray_cluster, reference, images,
                                                                          golden_dir, tmp_path):
    """2 actors on the 2-CPU local cluster; one is killed (SIGKILL) once results arrive. Ray restarts it
    and retries its rows: the folder ends with exactly the local run's files (no more, no less, same
    bytes, no .part file), and the command reports success."""
    out = tmp_path / "out"
    codes = []
    job = threading.Thread(target=lambda: codes.append(cli.main(
        ["--model", _model(golden_dir), "--input", str(images), "--out", str(out), *COMMON,
         "--ray", "--actors", "2"])))
    job.start()
    deadline = time.monotonic() + 240
    while len(list(out.glob("*.png"))) < 2:
        assert job.is_alive() and time.monotonic() < deadline, "the Ray run wrote nothing"
        time.sleep(0.02)
    actors = _actor_processes()  # both, or the one that has started so far
    assert 1 <= len(actors) <= 2, actors
    working = [p for p in actors if "__init__" not in " ".join(p.cmdline())]  # one with rows in flight
    (working or actors)[0].kill()
    done_at_kill = len(list(out.glob("*.png")))
    job.join(timeout=300)
    assert not job.is_alive()
    assert done_at_kill < N_IMAGES, "the run finished before the actor was killed: nothing was tested"
    assert codes == [0]
    assert _files(out) == _files(reference)


@pytest.mark.slow
def test_the_benchmark_runner_predicts_the_same_on_ray(pack, ray_cluster, golden_dir, tmp_path):
    benchmark = importlib.import_module(f"{pack.__name__}.batch.benchmark")
    images, gt = tmp_path / "images", tmp_path / "gt"
    _write_images(images, 4, seed=5)
    gt.mkdir()
    for p in images.iterdir():
        with Image.open(p) as im:
            levels = (np.asarray(im)[..., 0] > 128).astype(np.uint8) * 255
        Image.fromarray(levels).save(gt / p.name)
    args = ["--model", _model(golden_dir), "--images", str(images), "--gt", str(gt), "--prompt", "box",
            "--resolution", "64", "--device", "cpu", "--threads", "1", "--quiet"]
    assert benchmark.main([*args, "--out", str(tmp_path / "local")]) == 0
    assert benchmark.main([*args, "--out", str(tmp_path / "ray"), "--ray"]) == 0
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").glob("*.png")}
    assert len(local) == 4
    assert {p.name: p.read_bytes() for p in (tmp_path / "ray").glob("*.png")} == local


# ----------------------------------------------------------------------------- other families


def test_other_families_their_prompts_and_companions(cli, tmp_path, capsys):
    """AIM and MAM (tiny checkpoints in a ComfyUI models/ layout): a prompt kind the family cannot take
    stops the job with what it takes; MAM's SAM checkpoint is found in models/sams as the loader node
    finds it, and its absence is named."""
    import tiny_families

    models = tmp_path / "models"
    names = tiny_families.install(models, ["aim", "mam"])
    inputs = _write_images(tmp_path / "in", 2)
    for p in inputs.iterdir():  # AIM needs 128 px per side
        with Image.open(p) as im:
            im.resize((160, 128)).save(p)
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text('{"stem": "*", "box": [30, 20, 130, 110]}\n')
    aim = str(models / "matting" / names["aim"])
    mam = str(models / "matting" / names["mam"])

    code = cli.main(["--model", aim, "--input", str(inputs), "--prompt", str(boxes), "--out", str(tmp_path / "a1")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot matte with a box: it takes no prompt" in err and "--prompt auto" in err
    assert cli.main(["--model", aim, "--input", str(inputs), "--out", str(tmp_path / "a2"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "a2").glob("*.png")) == ["im00.png", "im01.png"]

    # the companion is checked first, so this refusal also says models/sams/ held MAM's SAM checkpoint
    code = cli.main(["--model", mam, "--input", str(inputs), "--out", str(tmp_path / "m1")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot matte with no prompt: it takes points or a box or a mask" in err
    (models / "sams" / "sam_vit_b_01ec64.pth").unlink()
    code = cli.main(["--model", mam, "--input", str(inputs), "--prompt", str(boxes), "--out", str(tmp_path / "m3")])
    err = capsys.readouterr().err
    assert code == 2 and "sam_vit_b_01ec64.pth" in err
