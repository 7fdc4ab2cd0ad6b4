"""Known weights are fetched with huggingface_hub on first use: against a loopback HTTP server that
answers what hf_hub_download asks (HEAD, then GET of /{repo}/resolve/{revision}/{filename})."""

from __future__ import annotations

import hashlib
import http.server
import io
import sys
import threading

import pytest
import torch

pytestmark = [pytest.mark.inprocess, pytest.mark.golden]

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """A tiny stand-in for the Hugging Face resolve endpoint."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files  # "/{repo}/resolve/{rev}/{name}" -> bytes
        self.truncate = False
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _head(self):
                hub.requests.append((self.command, self.path))
                body = hub.files.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"%s"' % hashlib.sha256(body).hexdigest())
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                return body

            def do_HEAD(self):
                self._head()

            def do_GET(self):
                if hub.truncate and self.headers.get("Range"):
                    # the connection "broke" and cannot be resumed: refuse, so the client gives up
                    hub.requests.append((self.command, self.path))
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self._head()
                if body is None:
                    return
                if hub.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def c(comfy_inprocess):
    return comfy_inprocess


@pytest.fixture(scope="module")
def weights_mod(c):
    return sys.modules[f"{c.module.__name__}.nodes.model_files"]


@pytest.fixture(scope="module")
def released_file(golden_dir) -> bytes:
    """The golden tiny SDMatte in the released .pth layout (detectron2 checkpointer dict)."""
    from safetensors.torch import load_file

    buf = io.BytesIO()
    torch.save({"model": load_file(str(golden_dir / "sdmatte_tiny" / "model.safetensors")), "iteration": 1}, buf)
    return buf.getvalue()


@pytest.fixture
def hub(weights_mod, released_file, monkeypatch):
    files = {}
    for entry in weights_mod.known_models().values():
        files[f"/{entry['repo_id']}/resolve/{entry['revision']}/{entry['filename']}"] = released_file
    h = Hub(files)
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield h
    h.close()


@pytest.fixture
def sdmatte_dir(comfy_base_dir):
    d = comfy_base_dir / "models" / "sdmatte"
    yield d
    for name in ("SDMatte.pth", "SDMatte_plus.pth", "LiteSDMatte.pth"):
        (d / name).unlink(missing_ok=True)


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".promptmatte-download-")]


def test_known_weights_download_on_first_use(c, hub, sdmatte_dir, released_file, weights_mod):
    import comfy.utils

    assert not (sdmatte_dir / "SDMatte.pth").exists()
    progress = []
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append((v, t)))
    try:
        (patcher,) = c.outputs("PromptMatteModelLoader", ckpt_name="SDMatte.pth", precision="fp32")
    finally:
        comfy.utils.set_progress_bar_global_hook(old)
    assert (sdmatte_dir / "SDMatte.pth").read_bytes() == released_file
    assert leftovers(sdmatte_dir) == []
    assert ("GET", "/LongfeiHuang/SDMatte/resolve/main/SDMatte.pth") in hub.requests
    assert progress and progress[-1] == (len(released_file), len(released_file))
    assert patcher.model is not None
    # second use: from disk, no request
    n = len(hub.requests)
    assert weights_mod.resolve_checkpoint("SDMatte.pth") == str(sdmatte_dir / "SDMatte.pth")
    assert len(hub.requests) == n


def test_broken_download_leaves_no_file(c, hub, sdmatte_dir, weights_mod):
    hub.truncate = True
    with pytest.raises(ValueError) as e:
        weights_mod.resolve_checkpoint("LiteSDMatte.pth")
    msg = str(e.value)
    assert "Could not download" in msg and str(sdmatte_dir) in msg
    assert not (sdmatte_dir / "LiteSDMatte.pth").exists()
    assert leftovers(sdmatte_dir) == []


def test_missing_on_the_hub(c, hub, sdmatte_dir, weights_mod):
    hub.files.clear()
    with pytest.raises(ValueError) as e:
        weights_mod.resolve_checkpoint("SDMatte_plus.pth")
    assert "Could not download" in str(e.value) and "by hand" in str(e.value)
    assert not (sdmatte_dir / "SDMatte_plus.pth").exists()


def test_offline_and_absent_names_the_folder(c, weights_mod, sdmatte_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as e:
        c.outputs("PromptMatteModelLoader", ckpt_name="SDMatte_plus.pth", precision="auto")
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and str(sdmatte_dir) in msg and "SDMatte_plus.pth" in msg
