"""Known weights are fetched with huggingface_hub on first use, against a loopback HTTP server that
answers what huggingface_hub asks: HEAD and GET (with Range) of /{repo}/resolve/{revision}/{file},
and GET /api/models/{repo}/tree/{revision} for the repositories whose weight file is found by listing.

Runs in both lanes of scripts/test: the main lane has the newest huggingface_hub, the
minimum-versions lane the oldest we allow (requirements.txt's lower bound)."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.inprocess, pytest.mark.golden]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RANGE = re.compile(r"bytes=(\d+)-$")


class Hub:
    """A small stand-in for the Hugging Face Hub on 127.0.0.1.

    ``files``: "{repo}/{path}" -> bytes (revision "main"). ``break_at``: while set, a download stops
    after that many bytes of the file and the connection closes, and a request to resume is refused
    (403), so huggingface_hub's own retries give up too. ``chunk``/``delay``: the body is sent in
    pieces with a pause between them; ``on_chunk(sent, total)`` runs in the server after each piece.
    ``requests``: (method, path, Range header, body bytes sent) of every request.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.break_at: int | None = None
        self.chunk = 1 << 20
        self.delay = 0.0
        self.on_chunk = None
        self.requests: list[dict] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _record(self, sent=0):
                hub.requests.append({"method": self.command, "path": self.path.split("?")[0],
                                     "range": self.headers.get("Range"), "sent": sent})

            def _empty(self, code, error=None):
                self.send_response(code)
                if error:
                    self.send_header("X-Error-Code", error)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _resolve(self):
                m = re.fullmatch(r"/(?P<repo>[^/]+/[^/]+)/resolve/main/(?P<path>.+)", self.path.split("?")[0])
                return hub.files.get(f"{m['repo']}/{m['path']}") if m else None

            def _headers(self, body: bytes, code=200, start=0):
                self.send_response(code)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"%s"' % hashlib.sha256(body).hexdigest())
                self.send_header("Accept-Ranges", "bytes")
                if code == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self):
                self._record()
                body = self._resolve()
                if body is None:
                    return self._empty(404, "EntryNotFound")
                self._headers(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path.startswith("/api/models/"):
                    return self._tree(path)
                body = self._resolve()
                if body is None:
                    self._record()
                    return self._empty(404, "EntryNotFound")
                rng = self.headers.get("Range")
                start = 0
                if rng:
                    if hub.break_at is not None:  # the connection stays broken: no resuming
                        self._record()
                        return self._empty(403)
                    start = int(RANGE.match(rng).group(1))
                self._headers(body, 206 if rng else 200, start)
                end = len(body) if hub.break_at is None else min(len(body), hub.break_at)
                sent = 0
                for pos in range(start, end, hub.chunk):
                    piece = body[pos:min(pos + hub.chunk, end)]
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent += len(piece)
                    if hub.on_chunk:
                        hub.on_chunk(start + sent, len(body))
                    if hub.delay:
                        time.sleep(hub.delay)
                self._record(sent)
                if end < len(body):
                    self.close_connection = True

            def _tree(self, path):
                self._record()
                m = re.fullmatch(r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/main(/.*)?", path)
                repo = m["repo"] if m else None
                entries, folders = [], set()
                for key, body in sorted(hub.files.items()):
                    if not key.startswith(f"{repo}/"):
                        continue
                    rel = key[len(repo) + 1:]
                    parts = rel.split("/")
                    for i in range(1, len(parts)):
                        folders.add("/".join(parts[:i]))
                    entries.append({"type": "file", "oid": hashlib.sha1(body).hexdigest(),
                                    "size": len(body), "path": rel})
                if not entries:
                    return self._empty(404, "RepoNotFound")
                entries += [{"type": "directory", "oid": "0" * 40, "path": f} for f in sorted(folders)]
                data = json.dumps(entries).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def gets(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "GET" and r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    import huggingface_hub

    print("huggingface_hub", huggingface_hub.__version__)
    return comfy_inprocess


@pytest.fixture(scope="module")
def weights_mod(c):
    return sys.modules[f"{c.module.__name__}.nodes.model_files"]


@pytest.fixture(scope="module")
def safetensors_file(golden_dir) -> bytes:
    """The golden tiny SDMatte as 1038lab publishes the weights (a flat safetensors file)."""
    return (golden_dir / "sdmatte_tiny" / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def released_file(golden_dir) -> bytes:
    """The golden tiny SDMatte in the authors' released .pth layout (detectron2 checkpointer dict)."""
    import io

    import torch
    from safetensors.torch import load_file

    buf = io.BytesIO()
    torch.save({"model": load_file(str(golden_dir / "sdmatte_tiny" / "model.safetensors")), "iteration": 1}, buf)
    return buf.getvalue()


@pytest.fixture
def sdmatte_dir(comfy_base_dir, weights_mod):
    d = comfy_base_dir / "models" / "sdmatte"
    yield d
    for name in weights_mod.known_models():
        (d / name).unlink(missing_ok=True)
    import shutil

    shutil.rmtree(d / ".promptmatte-download", ignore_errors=True)


@pytest.fixture
def hub(safetensors_file, released_file, monkeypatch):
    h = Hub({
        "1038lab/SDMatte/SDMatte.safetensors": safetensors_file,
        "1038lab/SDMatte/SDMatte_plus.safetensors": safetensors_file[::-1],  # other bytes, same size
        "LongfeiHuang/SDMatte/README.md": b"# SDMatte\n",
        "LongfeiHuang/SDMatte/unet/config.json": b"{}",
        # a bigger weights file with another name: never the one for SDMatte.pth
        "LongfeiHuang/SDMatte/unet/diffusion_pytorch_model.safetensors": b"\0" * (len(released_file) + 10),
        "LongfeiHuang/SDMatte/SDMatte.pth": released_file,
        "LongfeiHuang/SDMatte/SDMatte_plus.pth": released_file + b"\0",
    })
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_ENABLE_HF_TRANSFER", "0")
    yield h
    h.close()


def hidden_data(folder: Path) -> list[Path]:
    return [p for p in (folder / ".promptmatte-download").rglob("*") if p.is_file()] \
        if (folder / ".promptmatte-download").exists() else []


def test_loader_says_where_each_known_entry_comes_from(c, weights_mod):
    info = c["PromptMatteModelLoader"].GET_NODE_INFO_V1()
    spec = info["input"]["required"]["ckpt_name"]
    names = spec[1]["options"] if spec[0] == "COMBO" else spec[0]
    text = spec[1]["tooltip"] + "\n" + info["description"]
    known = weights_mod.known_models()
    assert {"SDMatte.safetensors", "SDMatte_plus.safetensors", "LiteSDMatte.pth", "SDMatte.pth"} <= set(known)
    for name, entry in known.items():
        assert name in names
        assert name in text and entry["repo_id"] in text, (name, text)
    assert known["SDMatte.safetensors"]["repo_id"] == "1038lab/SDMatte"
    assert known["LiteSDMatte.pth"]["repo_id"] == "LongfeiHuang/LiteSDMatte"


def test_default_weights_download_on_first_use_with_progress(c, hub, sdmatte_dir, safetensors_file, weights_mod):
    import comfy.utils

    final = sdmatte_dir / "SDMatte.safetensors"
    assert not final.exists()
    hub.chunk, hub.delay = len(safetensors_file) // 8 + 1, 0.15
    progress = []
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append((v, t)))
    try:
        (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name="SDMatte.safetensors", precision="fp32")
    finally:
        comfy.utils.set_progress_bar_global_hook(old)
    assert final.read_bytes() == safetensors_file
    assert hidden_data(sdmatte_dir) == []
    assert hub.gets("/1038lab/SDMatte/resolve/main/SDMatte.safetensors")
    size = len(safetensors_file)
    assert progress[-1] == (size, size)
    values = [v for v, _ in progress]
    assert values == sorted(values) and any(0 < v < size for v in values), progress  # it moved while downloading
    assert patcher.model is not None
    # second use: from disk, no request
    n = len(hub.requests)
    assert weights_mod.resolve_checkpoint("SDMatte.safetensors") == str(final)
    assert len(hub.requests) == n


def test_no_partial_file_under_the_final_name(c, hub, sdmatte_dir, safetensors_file, weights_mod):
    seen = []

    def midway(sent, total):
        if 0 < sent < total:
            seen.append(((sdmatte_dir / "SDMatte_plus.safetensors").exists(),
                         [n for n in weights_mod.checkpoint_names() if "promptmatte-download" in n or "incomplete" in n]))

    hub.chunk, hub.on_chunk = len(safetensors_file) // 4 + 1, midway
    path = weights_mod.resolve_checkpoint("SDMatte_plus.safetensors")
    assert seen and all(state == (False, []) for state in seen), seen
    assert Path(path).read_bytes() == safetensors_file[::-1]
    assert hidden_data(sdmatte_dir) == []


def test_interrupted_download_resumes_with_a_range_request(c, hub, sdmatte_dir, safetensors_file, weights_mod):
    size = len(safetensors_file)
    half = size // 2
    url = "/1038lab/SDMatte/resolve/main/SDMatte.safetensors"
    hub.chunk, hub.break_at = 1 << 16, half
    with pytest.raises(ValueError) as e:
        weights_mod.resolve_checkpoint("SDMatte.safetensors")
    msg = str(e.value)
    assert "Could not download" in msg and str(sdmatte_dir) in msg and "continues from there" in msg, msg
    assert not (sdmatte_dir / "SDMatte.safetensors").exists()
    kept = hidden_data(sdmatte_dir)
    assert sum(p.stat().st_size for p in kept) == half, kept
    assert "SDMatte.safetensors" in weights_mod.checkpoint_names()  # still offered, not as a partial file
    assert not [n for n in weights_mod.checkpoint_names() if n.startswith(".") or "incomplete" in n]

    hub.break_at = None
    hub.requests.clear()
    path = weights_mod.resolve_checkpoint("SDMatte.safetensors")
    gets = hub.gets(url)
    assert [g["range"] for g in gets] == [f"bytes={half}-"], gets  # continued, not restarted
    assert sum(g["sent"] for g in gets) == size - half
    assert Path(path).read_bytes() == safetensors_file
    assert hidden_data(sdmatte_dir) == []


def test_cancel_keeps_the_data_and_corrupt_data_is_not_kept(c, hub, sdmatte_dir, safetensors_file, weights_mod):
    """ComfyUI's Cancel stops the transfer and keeps what arrived; data that does not add up to the
    Hub's SHA-256 is discarded instead of being saved under the final name."""
    import comfy.model_management as mm

    size = len(safetensors_file)

    def cancel_midway(sent, total):
        if sent >= total // 3:
            mm.interrupt_current_processing(True)
            hub.on_chunk = None

    hub.chunk, hub.delay, hub.on_chunk = 1 << 18, 0.05, cancel_midway
    try:
        with pytest.raises(mm.InterruptProcessingException):
            weights_mod.resolve_checkpoint("SDMatte.safetensors")
    finally:
        mm.interrupt_current_processing(False)
    (part,) = hidden_data(sdmatte_dir)
    assert 0 < part.stat().st_size < size and not (sdmatte_dir / "SDMatte.safetensors").exists()
    data = bytearray(part.read_bytes())
    data[:64] = bytes(64)  # damaged on disk meanwhile
    part.write_bytes(bytes(data))
    hub.delay = 0
    with pytest.raises(ValueError) as e:
        weights_mod.resolve_checkpoint("SDMatte.safetensors")
    assert "SHA-256" in str(e.value) and "discarded" in str(e.value), str(e.value)
    assert not (sdmatte_dir / "SDMatte.safetensors").exists() and hidden_data(sdmatte_dir) == []
    assert Path(weights_mod.resolve_checkpoint("SDMatte.safetensors")).read_bytes() == safetensors_file


def test_listing_finds_the_authors_weight_file(c, hub, sdmatte_dir, released_file, weights_mod):
    (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name="SDMatte.pth", precision="fp32")
    assert (sdmatte_dir / "SDMatte.pth").read_bytes() == released_file
    assert any(r["path"].startswith("/api/models/LongfeiHuang/SDMatte/tree/main") for r in hub.requests)
    assert hub.gets("/LongfeiHuang/SDMatte/resolve/main/SDMatte.pth")
    assert not [r for r in hub.requests if "SDMatte_plus" in r["path"] or "unet/" in r["path"]]
    assert patcher.model is not None
    assert hidden_data(sdmatte_dir) == []


def test_listing_takes_the_largest_matching_file(c, hub, sdmatte_dir, released_file, weights_mod):
    hub.files.update({
        "LongfeiHuang/LiteSDMatte/LiteSDMatte.pth": b"too small to be the model",
        "LongfeiHuang/LiteSDMatte/checkpoints/litesdmatte.pth": released_file,
        # a safetensors file cannot be saved as LiteSDMatte.pth (the suffix picks the reader)
        "LongfeiHuang/LiteSDMatte/LiteSDMatte.safetensors": released_file * 2,
        "LongfeiHuang/LiteSDMatte/LiteSDMatte_old.pth": released_file * 2,
    })
    path = weights_mod.resolve_checkpoint("LiteSDMatte.pth")
    assert Path(path) == sdmatte_dir / "LiteSDMatte.pth"
    assert Path(path).read_bytes() == released_file
    assert hub.gets("/LongfeiHuang/LiteSDMatte/resolve/main/checkpoints/litesdmatte.pth")
    assert hidden_data(sdmatte_dir) == []


def test_listing_without_a_fitting_file_names_the_files(c, hub, sdmatte_dir, weights_mod):
    for key in [k for k in hub.files if k.startswith("LongfeiHuang/SDMatte/")]:
        del hub.files[key]
    hub.files.update({
        "LongfeiHuang/SDMatte/README.md": b"# SDMatte\n",
        "LongfeiHuang/SDMatte/SDMatte_plus.pth": b"x",
        "LongfeiHuang/SDMatte/SDMatte.safetensors": b"x",
    })
    with pytest.raises(ValueError) as e:
        weights_mod.resolve_checkpoint("SDMatte.pth")
    msg = str(e.value)
    for part in ("LongfeiHuang/SDMatte", "README.md", "SDMatte_plus.pth", "SDMatte.safetensors",
                 "known_models.json", "'SDMatte'", str(sdmatte_dir)):
        assert part in msg, (part, msg)
    assert not (sdmatte_dir / "SDMatte.pth").exists()
    assert not [r for r in hub.requests if "/resolve/" in r["path"]]
    assert hidden_data(sdmatte_dir) == []


def test_missing_on_the_hub(c, hub, sdmatte_dir, weights_mod):
    hub.files.clear()
    for name in ("SDMatte_plus.safetensors", "LiteSDMatte.pth"):
        with pytest.raises(ValueError) as e:
            weights_mod.resolve_checkpoint(name)
        msg = str(e.value)
        assert "Could not download" in msg and "by hand" in msg and str(sdmatte_dir) in msg, msg
        assert not (sdmatte_dir / name).exists()
    assert hidden_data(sdmatte_dir) == []
    assert not (sdmatte_dir / ".promptmatte-download").exists()


def test_offline_and_absent_names_the_folder(c, weights_mod, sdmatte_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as e:
        c.outputs("PromptMatteModelLoader", ckpt_name="SDMatte_plus.safetensors", precision="auto")
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and str(sdmatte_dir) in msg and "SDMatte_plus.safetensors" in msg
    assert "1038lab/SDMatte/resolve/main/SDMatte_plus.safetensors" in msg
    with pytest.raises(ValueError) as e:
        weights_mod.resolve_checkpoint("LiteSDMatte.pth")
    msg = str(e.value)
    assert str(sdmatte_dir) in msg and "LongfeiHuang/LiteSDMatte" in msg and "LiteSDMatte.pth" in msg
