"""Workflow 11 (video matting) run from the real frontend on the real server, on a synthetic clip
written with av at test time (tests/video_clips.py, H.264 as a user's clip would be): core Load
Video -> Get Video Components -> Matte Prompt Editor / Matting (video) -> Matte Composite -> Create
Video -> Save Video, with the tiny golden SDMatte. Then the editor's frame chooser is moved, the
box drawn on that frame, and the second run follows from the frame chosen."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import harness
from video_clips import make_clip

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.golden]
WORKFLOW = harness.REPO / "workflows" / "11_video_matting.json"
N_FRAMES, FPS = 8, 12
CLIP_NAME = "promptmatte_video_clip.mp4"


def write_clip(frames: np.ndarray, fps: int) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def read_clip(data: bytes):
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return np.stack(frames), float(stream.average_rate)


def box_of(alpha, pad: int = 4) -> list:
    ys, xs = np.nonzero(alpha.numpy() > 0.5)
    return [int(xs.min()) - pad, int(ys.min()) - pad, int(xs.max()) + 1 + pad, int(ys.max()) + 1 + pad]


@pytest.mark.timeout(900)
def test_video_workflow_runs_from_the_frontend_and_follows_from_the_chosen_frame(comfy_server, comfy_client,
                                                                                   comfy_base_dir):
    harness.require_browser()
    if not (comfy_base_dir / "models" / "sdmatte" / "sdmatte_tiny.safetensors").exists():
        pytest.fail("the golden tiny SDMatte checkpoint is not linked into the test base dir")
    clip = make_clip()
    frames = (clip.frames[:N_FRAMES].numpy() * 255 + 0.5).astype(np.uint8)
    comfy_client.upload_image(write_clip(frames, FPS), filename=CLIP_NAME)
    chosen = 5
    config = {"workflow": str(WORKFLOW), "video": CLIP_NAME, "ckpt": "sdmatte_tiny.safetensors", "resolution": 64,
              "motion_margin": 0.1, "box": box_of(clip.alpha[0]), "frame": chosen,
              "box_on_frame": box_of(clip.alpha[chosen]), "timeoutMs": 300000}
    result = harness.run_spec("video_workflow.spec.mjs", comfy_server.url, config, timeout=850)
    assert not result.get("page_errors"), result["page_errors"]

    for run, frame in ((result["first"], 0), (result["second"], chosen)):
        assert "rejection" not in run, json.dumps(run.get("rejection"))[:3000]
        assert run.get("status") == "success", run.get("error")
        types = {n["class_type"] for n in run["prompt"].values()}
        assert types == {"LoadVideo", "GetVideoComponents", "PromptMatteModelLoader", "PromptMatteEditor",
                         "PromptMatteVideo", "PromptMatteComposite", "CreateVideo", "SaveVideo"}
        video_id = next(i for i, n in run["prompt"].items() if n["class_type"] == "PromptMatteVideo")
        report = run["outputs"][video_id]["promptmatte_report"][0]
        assert f"{N_FRAMES} frames" in report and f"frame {frame} (prompt)" in report, report
        save_id = next(i for i, n in run["prompt"].items() if n["class_type"] == "SaveVideo")
        (saved,) = run["outputs"][save_id]["images"]
        written, fps = read_clip(comfy_client.view(saved["filename"], saved["subfolder"], "output"))
        assert written.shape == frames.shape and fps == pytest.approx(FPS)  # every frame, the clip's fps
    # the frame chooser: shown for the batch, the frame stored with the box and fed to prompt_frame
    assert result["editor"]["frames"] == str(N_FRAMES) and result["editor"]["visible"]
    assert result["editor"]["label"] == f"frame {chosen} / {N_FRAMES - 1}"
    state = json.loads(result["editor"]["state"])
    assert state["frame"] == chosen and state["box"] == config["box_on_frame"]


def keyframe_graph(keyframes_source: dict) -> dict:
    """EmptyImage (a 4-frame batch) -> Matting (video) with no prompt and keyframes from
    ``keyframes_source`` (node "k"), the tiny SDMatte -> Preview Any of the report."""
    return {
        "frames": {"class_type": "EmptyImage",
                   "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": 0x336699}},
        "model": {"class_type": "PromptMatteModelLoader",
                  "inputs": {"ckpt_name": "sdmatte_tiny.safetensors", "precision": "auto"}},
        "box": {"class_type": "PromptMatteBox", "inputs": {"x1": 16, "y1": 16, "x2": 48, "y2": 48}},
        "k": keyframes_source,
        "video": {"class_type": "PromptMatteVideo",
                  "inputs": {"model": ["model", 0], "frames": ["frames", 0], "keyframes": ["k", 0], "prompt_frame": 0,
                             "transparent": False, "resolution": 64, "resize": "stretch (as the authors)",
                             "focus": "whole image", "margin": 0.1, "caption": "", "motion_margin": 0.05}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["video", 1]}},
    }


def test_keyframes_reach_the_node_through_the_server(comfy_client, comfy_base_dir):
    """The keyframes input takes a Matte Keyframe chain or a MASK batch (the server validates both
    links); a MASK batch of the wrong length is a clear error and the server stays up."""
    if not (comfy_base_dir / "models" / "sdmatte" / "sdmatte_tiny.safetensors").exists():
        pytest.fail("the golden tiny SDMatte checkpoint is not linked into the test base dir")
    from comfy_host import ExecutionFailed

    chain = keyframe_graph({"class_type": "PromptMatteKeyframe", "inputs": {"prompt": ["box", 0], "frame": 2}})
    result = comfy_client.run(chain, timeout=300)
    report = result.outputs["show"]["text"][0]
    assert "frame 2 (keyframe)" in report and "4 frames, followed as a box" in report, report
    wrong = keyframe_graph({"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}})
    with pytest.raises(ExecutionFailed) as caught:
        comfy_client.run(wrong, timeout=300)
    message = caught.value.exception_message
    assert "1 masks of 64×64 but the clip is 4 frames of 64×64" in message and "one mask per frame" in message
    assert "Traceback" not in message
    chain["box"]["inputs"]["x2"] = 40  # another prompt: not served from the cache
    assert "frame 2 (keyframe)" in comfy_client.run(chain, timeout=300).outputs["show"]["text"][0]  # still up
