"""Test host for PromptMatte: a real ComfyUI, started as a server subprocess or
imported in-process, on a throw-away base directory.

Used by tests/conftest.py (fixtures ``comfy_server``, ``comfy_inprocess``,
``pack``, ``golden_dir``); importable by tests for the helpers and errors:

    from comfy_host import PackImportFailed, ExecutionFailed, make_base_dir, start_server

Nothing here fakes ComfyUI: the server is ComfyUI's own ``main.py`` run with
the project venv's Python, and the in-process host imports ComfyUI's modules
from the checkout found by ``scripts/find_comfyui.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

REPO = Path(__file__).resolve().parent.parent
PACK_NAME = "PromptMatte"
# Golden test checkpoints linked into models/sdmatte/ as <name>.safetensors.
GOLDEN_MODELS = ("sdmatte_tiny", "litesdmatte_tiny", "litesdmatte_tiny_nomid")
# Public node ids (CONTRACTS.md).
NODE_IDS = (
    "PromptMatteModelLoader",
    "PromptMattePoints",
    "PromptMatteBox",
    "PromptMatteMask",
    "PromptMatteTrimap",
    "PromptMatteApply",
    "PromptMatteComposite",
    "PromptMatteEditor",
    "PromptMatteMetrics",
)

sys.path.insert(0, str(REPO / "scripts"))
try:
    from find_comfyui import ComfyUINotFound, find_comfyui  # noqa: E402
finally:
    sys.path.remove(str(REPO / "scripts"))


# --------------------------------------------------------------------------
# errors


class PackImportFailed(RuntimeError):
    """ComfyUI started (or loaded nodes) but could not import a custom-node pack."""

    def __init__(self, pack: str, messages: list[str], log: str = ""):
        self.pack = pack
        self.messages = messages
        self.log = log
        text = "\n".join(messages)
        super().__init__(
            f"ComfyUI could not import the custom-node pack {pack!r}:\n{text}"
            + (f"\n--- server log (tail) ---\n{_tail(log, 120)}" if log else "")
        )


class ServerStartError(RuntimeError):
    """The ComfyUI server process died or did not answer in time."""


class PromptRejected(RuntimeError):
    """POST /prompt answered 400: the prompt failed ComfyUI's validation."""

    def __init__(self, error: Any, node_errors: Any):
        self.error = error
        self.node_errors = node_errors
        super().__init__(
            "ComfyUI rejected the prompt: "
            + json.dumps(error, indent=1)
            + "\nnode_errors: "
            + json.dumps(node_errors, indent=1)
        )


class ExecutionFailed(RuntimeError):
    """A queued prompt ended with ``execution_error``."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = dict(data)
        self.node_id = data.get("node_id")
        self.node_type = data.get("node_type")
        self.exception_type = data.get("exception_type")
        self.exception_message = data.get("exception_message", "")
        tb = "".join(data.get("traceback") or [])
        super().__init__(
            f"node {self.node_id} ({self.node_type}) raised {self.exception_type}: "
            f"{self.exception_message}\n{tb}"
        )


class ExecutionInterrupted(RuntimeError):
    """A queued prompt ended with ``execution_interrupted``."""


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# locations


def comfyui_path() -> Path:
    """The ComfyUI checkout (COMFYUI_PATH, the one this pack sits in, ~/ComfyUI)."""
    return find_comfyui(REPO)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def golden_path() -> Path:
    """Where the golden fixtures should be (may not exist)."""
    env = os.environ.get("PROMPTMATTE_GOLDEN", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return (REPO.parent / "shared" / "golden").resolve()


def make_base_dir(
    root: Path,
    packs: Mapping[str, Path] | None = None,
    golden: Path | None = None,
    models: Iterable[str] = GOLDEN_MODELS,
) -> Path:
    """Lay out a throw-away ComfyUI base directory (``--base-directory``).

    ``custom_nodes/<name>`` is a symlink to each pack (default: this repo as
    ``PromptMatte``); with ``golden``, ``models/sdmatte/<name>.safetensors``
    links to ``golden/<name>/model.safetensors``. Also creates input, output,
    temp and user folders.
    """
    root = Path(root)
    packs = {PACK_NAME: REPO} if packs is None else packs
    for sub in ("custom_nodes", "models/sdmatte", "input", "output", "temp", "user"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, target in packs.items():
        link = root / "custom_nodes" / name
        if link.is_symlink() or link.exists():
            continue
        link.symlink_to(Path(target).resolve(), target_is_directory=True)
    if golden is not None:
        for name in models:
            src = Path(golden) / name / "model.safetensors"
            if not src.is_file():
                raise FileNotFoundError(f"golden checkpoint missing: {src}")
            dst = root / "models" / "sdmatte" / f"{name}.safetensors"
            if not dst.exists():
                dst.symlink_to(src)
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# pack import failures, as ComfyUI logs them

_FAILURE_PATTERNS = (
    "Cannot import {p} module for custom nodes",
    "(IMPORT FAILED): {p}",
    "Error while calling comfy_entrypoint in {p}",
    "comfy_entrypoint in {p} ",
    "Skip {p} module for custom nodes",
)


def pack_import_failures(log: str, base_dir: Path, pack: str) -> list[str]:
    """Lines of a ComfyUI log saying that custom_nodes/<pack> failed to load.

    ComfyUI never stops for a broken pack: it logs a traceback, "Cannot
    import ... module for custom nodes", and "(IMPORT FAILED)" in the
    import-times table (also when ``comfy_entrypoint`` raised or returned
    something unusable).
    """
    path = os.path.join(str(base_dir), "custom_nodes", pack)
    pats = [p.format(p=path) for p in _FAILURE_PATTERNS]
    hits = [ln for ln in log.splitlines() if any(p in ln for p in pats)]
    if hits:
        # include the traceback ComfyUI logged just before "Cannot import"
        lines = log.splitlines()
        for i, ln in enumerate(lines):
            if ln.startswith("Traceback (most recent call last)"):
                end = next(
                    (j for j in range(i, len(lines)) if "Cannot import" in lines[j]), None
                )
                if end is not None and path in lines[end]:
                    return lines[i : end + 1] + [h for h in hits if h != lines[end]]
    return hits


# --------------------------------------------------------------------------
# HTTP / websocket client


@dataclass
class PromptResult:
    """What ``ComfyClient.wait`` returns."""

    prompt_id: str
    history: dict  # the /history entry: prompt, outputs, status, meta
    events: list = field(default_factory=list)  # every websocket message (type, data) for it

    @property
    def outputs(self) -> dict:
        """node id -> UI output dict (e.g. {"images": [{filename, subfolder, type}]})."""
        return self.history.get("outputs", {})

    @property
    def progress(self) -> list[dict]:
        """The ``progress`` events ({value, max, node, prompt_id}) in order."""
        return [d for t, d in self.events if t == "progress"]

    @property
    def executed_nodes(self) -> list[str]:
        return [d["node"] for t, d in self.events if t == "executing" and d.get("node")]

    @property
    def cached_nodes(self) -> list[str]:
        """Nodes served from ComfyUI's cache: its ``execution_cached`` message, read from the
        history's status messages (always recorded) as well as from the websocket (which can
        miss a message sent while it reconnects)."""
        out: list[str] = []
        messages = list(self.events) + [tuple(m) for m in self.history.get("status", {}).get("messages", [])]
        for t, d in messages:
            if t == "execution_cached":
                out.extend(n for n in d.get("nodes", []) if n not in out)
        return out


class ComfyClient:
    """A small client for one ComfyUI server (one websocket client id)."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self._events: list[tuple[str, dict]] = []
        self._cond = threading.Condition()
        self._ws = None
        self._ws_thread: threading.Thread | None = None
        self._closed = False

    # --- plumbing
    def _request(self, method: str, path: str, body: bytes | None = None, headers=None, timeout=None):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        return urllib.request.urlopen(req, timeout=timeout or self.timeout)

    def get_json(self, path: str) -> Any:
        with self._request("GET", path) as r:
            return json.loads(r.read())

    def post_json(self, path: str, payload: Any) -> bytes:
        data = json.dumps(payload).encode()
        with self._request("POST", path, data, {"Content-Type": "application/json"}) as r:
            return r.read()

    def connect_ws(self) -> None:
        """Listen on /ws?clientId=... in a background thread (idempotent)."""
        if self._ws is not None:
            return
        import websocket  # websocket-client

        ws_url = self.url.replace("http://", "ws://", 1) + f"/ws?clientId={self.client_id}"
        self._ws = websocket.create_connection(ws_url, timeout=self.timeout)
        self._ws.settimeout(None)

        def reader():
            while not self._closed:
                try:
                    msg = self._ws.recv()
                except Exception:
                    break
                if isinstance(msg, (bytes, bytearray)):
                    continue  # binary preview images
                try:
                    obj = json.loads(msg)
                except ValueError:
                    continue
                with self._cond:
                    self._events.append((obj.get("type", ""), obj.get("data") or {}))
                    self._cond.notify_all()

        self._ws_thread = threading.Thread(target=reader, name="comfy-ws", daemon=True)
        self._ws_thread.start()

    def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            self._ws = None

    def events(self, prompt_id: str | None = None) -> list[tuple[str, dict]]:
        """Websocket messages received so far (for one prompt if given)."""
        with self._cond:
            evs = list(self._events)
        if prompt_id is None:
            return evs
        return [(t, d) for t, d in evs if d.get("prompt_id") == prompt_id]

    # --- API
    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    def object_info(self, node_class: str | None = None) -> dict:
        if node_class:
            return self.get_json("/object_info/" + urllib.parse.quote(node_class))
        return self.get_json("/object_info")

    def queue(self, prompt: Mapping[str, Any], extra_data: Mapping | None = None) -> str:
        """POST /prompt (API format); returns the prompt id.

        Raises PromptRejected with ComfyUI's ``error`` and ``node_errors`` on 400.
        """
        self.connect_ws()
        payload = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            payload["extra_data"] = dict(extra_data)
        try:
            body = self.post_json("/prompt", payload)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                obj = json.loads(raw)
            except ValueError:
                raise PromptRejected({"status": e.code, "body": raw.decode(errors="replace")}, {}) from None
            raise PromptRejected(obj.get("error"), obj.get("node_errors")) from None
        return json.loads(body)["prompt_id"]

    def history(self, prompt_id: str | None = None) -> dict:
        if prompt_id is None:
            return self.get_json("/history")
        return self.get_json("/history/" + urllib.parse.quote(prompt_id))

    def wait(self, prompt_id: str, timeout: float = 120.0) -> PromptResult:
        """Wait until the prompt has run.

        Returns a PromptResult (history entry + websocket events). Raises
        ExecutionFailed on ``execution_error``, ExecutionInterrupted on
        ``execution_interrupted``, TimeoutError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        next_poll = 0.0
        while True:
            evs = self.events(prompt_id)
            for t, d in evs:
                if t == "execution_error":
                    raise ExecutionFailed(d)
                if t == "execution_interrupted":
                    raise ExecutionInterrupted(f"prompt {prompt_id} interrupted at node {d.get('node_id')}")
            done_ws = any(
                t == "execution_success" or (t == "executing" and d.get("node") is None) for t, d in evs
            )
            now = time.monotonic()
            if done_ws or now >= next_poll:
                entry = self.history(prompt_id).get(prompt_id)
                if entry is not None and entry.get("status", {}).get("completed") is not None:
                    status = entry["status"]
                    if status.get("status_str") == "error":
                        for t, d in status.get("messages", []):
                            if t == "execution_error":
                                raise ExecutionFailed(d)
                            if t == "execution_interrupted":
                                raise ExecutionInterrupted(f"prompt {prompt_id} interrupted")
                        raise ExecutionFailed({"exception_message": json.dumps(status)})
                    # The history can say "completed" before the websocket thread has delivered
                    # the run's messages: give them a moment, so executed_nodes is complete.
                    settle = time.monotonic() + 5.0
                    while not done_ws and time.monotonic() < settle:
                        with self._cond:
                            self._cond.wait(0.1)
                        done_ws = any(t == "execution_success" or (t == "executing" and d.get("node") is None)
                                      for t, d in self.events(prompt_id))
                    return PromptResult(prompt_id, entry, self.events(prompt_id))
                next_poll = now + 0.5
            if now >= deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")
            with self._cond:
                self._cond.wait(0.1)

    def run(self, prompt: Mapping[str, Any], timeout: float = 120.0) -> PromptResult:
        """queue + wait."""
        return self.wait(self.queue(prompt), timeout)

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        with self._request("GET", "/view?" + q) as r:
            return r.read()

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.post_json("/free", {"unload_models": unload_models, "free_memory": free_memory})

    def upload_image(
        self,
        image: str | os.PathLike | bytes,
        filename: str | None = None,
        subfolder: str = "",
        type: str = "input",
        overwrite: bool = True,
    ) -> dict:
        """POST /upload/image; returns {"name", "subfolder", "type"}."""
        if isinstance(image, (bytes, bytearray)):
            data = bytes(image)
            filename = filename or f"upload_{uuid.uuid4().hex[:8]}.png"
        else:
            data = Path(image).read_bytes()
            filename = filename or Path(image).name
        boundary = "----promptmatte" + uuid.uuid4().hex
        buf = io.BytesIO()

        def field_(name: str, value: str):
            buf.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())

        field_("type", type)
        field_("subfolder", subfolder)
        field_("overwrite", "true" if overwrite else "false")
        buf.write(
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        buf.write(data)
        buf.write(f"\r\n--{boundary}--\r\n".encode())
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        with self._request("POST", "/upload/image", buf.getvalue(), headers) as r:
            return json.loads(r.read())


# --------------------------------------------------------------------------
# the server subprocess


class ComfyServer:
    """ComfyUI's main.py as a subprocess on 127.0.0.1 with a throw-away base dir."""

    def __init__(
        self,
        base_dir: Path,
        comfy: Path | None = None,
        python: str | None = None,
        port: int | None = None,
        packs: Iterable[str] = (PACK_NAME,),
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ):
        self.base_dir = Path(base_dir).resolve()
        self.comfy = Path(comfy) if comfy else comfyui_path()
        self.python = python or sys.executable
        self.port = port or free_port()
        self.packs = tuple(packs)
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.log_path = self.base_dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self.client: ComfyClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            self.python,
            "main.py",
            "--cpu",
            "--listen", "127.0.0.1",
            "--port", str(self.port),
            "--base-directory", str(self.base_dir),
            # the database would otherwise go to <ComfyUI>/user/comfyui.db
            "--database-url", f"sqlite:///{self.base_dir / 'user' / 'comfyui.db'}",
            "--disable-auto-launch",
            "--disable-api-nodes",
            "--log-stdout",
            *self.extra_args,
        ]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        """Start the server and wait until /system_stats answers.

        Raises PackImportFailed when ComfyUI logged that one of ``packs``
        failed to import, ServerStartError when the process died or did not
        answer within ``timeout`` seconds.
        """
        env = dict(os.environ)
        env.setdefault("PYTHONPYCACHEPREFIX", str(self.base_dir / "pycache"))
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "DO_NOT_TRACK": "1",
            }
        )
        env.update(self.env)
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=str(self.comfy),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        probe = ComfyClient(self.url, timeout=5)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise ServerStartError(
                        f"ComfyUI exited with status {self.proc.returncode} during start-up:\n"
                        + _tail(self.log_text(), 80)
                    )
                try:
                    probe.system_stats()
                    break
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"ComfyUI did not answer on {self.url} within {timeout:.0f} s:\n"
                        + _tail(self.log_text(), 80)
                    )
                time.sleep(0.25)
            log = self.log_text()
            for pack in self.packs:
                hits = pack_import_failures(log, self.base_dir, pack)
                if hits:
                    raise PackImportFailed(pack, hits, log)
        except BaseException:
            self.stop()
            raise
        self.client = ComfyClient(self.url)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def start_server(base_dir: Path, packs: Iterable[str] = (PACK_NAME,), timeout: float = 120.0, **kw) -> ComfyServer:
    """Start ComfyUI on ``base_dir`` (see make_base_dir); returns the running ComfyServer."""
    return ComfyServer(base_dir, packs=packs, **kw).start(timeout)


# --------------------------------------------------------------------------
# ComfyUI in-process


class ComfyInProcess:
    """ComfyUI imported into the test process, with the pack loaded by ComfyUI.

    ``classes`` is ``nodes.NODE_CLASS_MAPPINGS``; ``run(node_id, **inputs)``
    calls a node the way ComfyUI's executor does; ``module`` is the pack
    module as ComfyUI imported it (use its types for isinstance checks).
    """

    def __init__(self, comfy: Path, base_dir: Path, loop):
        self.comfy = comfy
        self.base_dir = base_dir
        self.loop = loop
        import nodes  # ComfyUI's nodes.py

        self.nodes = nodes
        self.classes = nodes.NODE_CLASS_MAPPINGS
        self.display_names = nodes.NODE_DISPLAY_NAME_MAPPINGS
        self.module = sys.modules.get(os.path.join(str(base_dir), "custom_nodes", PACK_NAME))

    def __getitem__(self, node_id: str):
        return self.classes[node_id]

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.classes

    def run(self, node_id: str, hidden: Mapping | None = None, **inputs):
        """Execute one node like comfy's executor (V3: PREPARE_CLASS_CLONE +
        the locked FUNCTION; V1: instance method). Returns what the node
        returned (a V3 ``io.NodeOutput``: use ``.result`` / ``.ui``)."""
        import asyncio
        import inspect

        from comfy_api.internal import _ComfyNodeInternal, make_locked_method_func

        cls = self.classes[node_id]
        if issubclass(cls, _ComfyNodeInternal):
            cls.VALIDATE_CLASS()
            clone = cls.PREPARE_CLASS_CLONE(dict(hidden or {}))
            f = make_locked_method_func(cls, cls.FUNCTION, clone)
        else:
            f = getattr(cls(), cls.FUNCTION)
        out = f(**inputs)
        if inspect.isawaitable(out):
            out = self.loop.run_until_complete(out)
        return out

    def outputs(self, node_id: str, **inputs) -> tuple:
        """Like run() but returns the output tuple (V3 ``.result`` / V1 tuple)."""
        out = self.run(node_id, **inputs)
        return tuple(getattr(out, "result", out) or ())


def start_inprocess(base_dir: Path, comfy: Path | None = None) -> ComfyInProcess:
    """Import ComfyUI in this process with CPU settings, folder_paths on
    ``base_dir``, and load the custom nodes found there as ComfyUI does.

    Raises PackImportFailed when ComfyUI logs that PromptMatte failed to load.
    Can be called once per process (ComfyUI keeps global state).
    """
    import asyncio
    import logging

    comfy = Path(comfy) if comfy else comfyui_path()
    base_dir = Path(base_dir).resolve()
    if str(comfy) not in sys.path:
        sys.path.insert(0, str(comfy))
    # ComfyUI has top-level modules named nodes, utils, app, server...: make
    # sure nothing else on sys.path (e.g. the repo root's nodes/) shadows them.
    for name in ("nodes", "utils", "app", "server", "execution", "folder_paths"):
        mod = sys.modules.get(name)
        if mod is not None and not str(getattr(mod, "__file__", "") or "").startswith(str(comfy)):
            raise RuntimeError(f"module {name!r} was imported from {mod.__file__}, not from ComfyUI")

    import comfy.options  # noqa: F401  (no CLI parsing: args are the defaults)
    from comfy.cli_args import args

    args.cpu = True
    args.base_directory = str(base_dir)
    args.disable_api_nodes = True
    args.database_url = f"sqlite:///{base_dir / 'user' / 'comfyui.db'}"

    import folder_paths

    if Path(folder_paths.base_path).resolve() != base_dir:
        raise RuntimeError(f"folder_paths was imported before args were set ({folder_paths.base_path})")

    # Same import order as main.py: utils/, execution and server before
    # nodes.py (which puts <ComfyUI>/comfy first on sys.path, where
    # comfy/utils.py would shadow the utils/ package).
    import utils.extra_config  # noqa: F401
    import comfy.utils  # noqa: F401
    import execution  # noqa: F401
    import server
    import nodes
    import comfy.model_management  # noqa: F401  (reads args.cpu)

    records: list[str] = []

    class _Capture(logging.Handler):
        def emit(self, record):
            try:
                records.append(record.getMessage())
            except Exception:
                pass

    handler = _Capture(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server.PromptServer(loop)  # as main.py does; nodes may use PromptServer.instance
        loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    finally:
        root.removeHandler(handler)
    hits = pack_import_failures("\n".join(records), base_dir, PACK_NAME)
    if hits:
        raise PackImportFailed(PACK_NAME, hits, "\n".join(records))
    return ComfyInProcess(comfy, base_dir, loop)
