"""Fetching a known SDMatte checkpoint from the Hugging Face Hub on first use.

huggingface_hub finds the file and its facts, the same way in every version from our lower bound
(0.23.2) to the newest (2.x): ``HfApi.list_repo_tree`` (GET /api/models/{repo}/tree/{revision}) for
the entries whose file is found by listing, ``get_hf_file_metadata`` (HEAD of the resolve URL: size,
ETag, final location, errors such as a missing file or a gated repository) and ``build_hf_headers``
(HF_TOKEN / the saved login). We move the bytes ourselves with the standard library, because the
hub's own ``hf_hub_download`` cannot serve every version: its ``tqdm_class`` keyword (for progress)
exists only in the newest releases, and since 2.x it deletes the partial data of a failed download
(a process-unique temporary file), so an interrupted multi-GB download would restart from zero.

- **Where the data goes:** ``<target>/.promptmatte-download/<name>.<key>.part`` (hidden: never listed
  by the loader; the key changes with the file's repository, revision, path, ETag and size, so data
  of another version is never resumed). The file is moved to its final name, on the same file
  system (an atomic rename), only once complete and, when the ETag is a SHA-256 (the Hub's large
  files), verified; no partial file ever carries a name the loader lists.
- **Resume:** a failed or cancelled transfer keeps the ``.part`` file; the next attempt continues
  with an HTTP Range request from its size.
- **Progress and Cancel:** ComfyUI's progress bar for the running node advances as bytes arrive, and
  ComfyUI's Cancel stops the transfer between 1 MB chunks (the data so far is kept).
- **Which file:** an entry names its ``filename``, or gives a ``match`` stem; then the repository's
  files are listed at download time and :func:`choose_weight_file` picks one (rule there).

Honours ``HF_ENDPOINT`` (mirrors), ``HF_HUB_OFFLINE``, ``HF_TOKEN`` (sent only to the Hub's own host,
never on to a CDN it redirects to), ``HF_HUB_DOWNLOAD_TIMEOUT`` and the usual proxy variables.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.parse
import urllib.request

log = logging.getLogger("PromptMatte")

STAGING_DIR = ".promptmatte-download"
SAFETENSORS_SUFFIXES = (".safetensors",)
# Read alike by our loader (a pickle, opened with weights_only=True), so one may stand for another.
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt")
_CHUNK = 1 << 20
_PROGRESS_SECONDS = 0.1
_TIMEOUT = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or 30)


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def repo_page(entry: dict) -> str:
    """The repository's file listing on the Hub (what a person opens to fetch a file by hand)."""
    return f"{endpoint()}/{entry['repo_id']}/tree/{entry.get('revision', 'main')}"


def hub_url(entry: dict, filename: str | None = None) -> str:
    """Download address of the entry's file; the repository page when the file is found by listing."""
    filename = filename or entry.get("filename")
    if not filename:
        return repo_page(entry)
    return f"{endpoint()}/{entry['repo_id']}/resolve/{entry.get('revision', 'main')}/{filename}"


def source_text(entry: dict) -> str:
    """Where an entry comes from, for tooltips and messages."""
    if entry.get("filename"):
        return f"{entry['repo_id']} ({entry['filename']})"
    return f"{entry['repo_id']} (file chosen by listing the repository)"


def offline() -> bool:
    try:
        from huggingface_hub import constants
        if constants.HF_HUB_OFFLINE:
            return True
    except Exception:  # pragma: no cover - huggingface_hub missing
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


# ----------------------------------------------------------------------------- choosing the file


def _norm(stem: str) -> str:
    return re.sub(r"[\s._-]+", "", stem).lower()


def accepted_suffixes(ckpt_name: str) -> tuple[str, ...]:
    """File types that can be saved as ``ckpt_name``: our loader picks the reader by suffix, so a
    ``.safetensors`` name takes only safetensors files and a ``.pth`` name any pickle checkpoint."""
    suffix = os.path.splitext(ckpt_name)[1].lower()
    return SAFETENSORS_SUFFIXES if suffix in SAFETENSORS_SUFFIXES else PICKLE_SUFFIXES


def choose_weight_file(ckpt_name: str, entry: dict, files: list[tuple[str, int | None]],
                       target_dir: str = "models/sdmatte") -> str:
    """The weight file of a listed repository for ``ckpt_name``.

    Rule: among the repository's files (any folder) whose type can be saved under ``ckpt_name``
    (see :func:`accepted_suffixes`) and whose name without extension equals the entry's ``match``
    (case, spaces, ``_``, ``-`` and ``.`` ignored: ``SDMatte`` takes ``SDMatte.pth`` or
    ``sdmatte.pth``, not ``SDMatte_plus.pth``), take the largest (ties: the shallowest path, then
    alphabetical). None: a ValueError that lists the repository's files.
    """
    want = _norm(entry["match"])
    suffixes = accepted_suffixes(ckpt_name)
    fits = []
    for path, size in files:
        stem, suffix = os.path.splitext(path.rsplit("/", 1)[-1])
        if suffix.lower() in suffixes and _norm(stem) == want:
            fits.append((path, size or 0))
    if fits:
        return min(fits, key=lambda f: (-f[1], f[0].count("/"), f[0]))[0]
    listed = ", ".join(p for p, _ in files[:40]) or "(no files)"
    if len(files) > 40:
        listed += f", ... ({len(files)} files)"
    raise ValueError(
        f"Hugging Face repository {entry['repo_id']} (revision {entry.get('revision', 'main')}) has no "
        f"weight file for '{ckpt_name}': looked for a {' / '.join(suffixes)} file named "
        f"'{entry['match']}' (case, '_' and '-' ignored), found: {listed}. Download the weights by hand "
        f"from {repo_page(entry)} and put them in {target_dir} as '{ckpt_name}', or correct "
        f"'{ckpt_name}' in nodes/known_models.json.")


def list_repo_files(entry: dict) -> list[tuple[str, int | None]]:
    """(path, size) of every file in the entry's repository (GET /api/models/{repo}/tree/{rev})."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint())
    items = api.list_repo_tree(entry["repo_id"], revision=entry.get("revision", "main"), recursive=True)
    # RepoFile has a size; RepoFolder (a folder entry) has none
    return sorted((item.path, item.size) for item in items if hasattr(item, "size"))


# ----------------------------------------------------------------------------- download


def _comfy():
    """ComfyUI's progress bar class and interrupt check (absent outside ComfyUI)."""
    try:
        import comfy.model_management
        import comfy.utils
    except ImportError:
        return None, lambda: None
    return comfy.utils.ProgressBar, comfy.model_management.throw_exception_if_processing_interrupted


def _part_path(staging: str, ckpt_name: str, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ckpt_name)
    return os.path.join(staging, f"{safe}.{hashlib.sha256(key.encode()).hexdigest()[:16]}.part")


def _drop_stale_parts(staging: str, ckpt_name: str, keep: str) -> None:
    """Partial data of an older version of the same file cannot be resumed: remove it."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ckpt_name)
    for name in os.listdir(staging):
        path = os.path.join(staging, name)
        if name.startswith(safe + ".") and name.endswith(".part") and path != keep:
            os.remove(path)


def _remove_staging_if_empty(staging: str) -> None:
    try:
        os.rmdir(staging)
    except OSError:
        pass


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def _open(url: str, start: int, auth: dict[str, str]):
    req = urllib.request.Request(url, headers={k: v for k, v in auth.items() if k.lower() != "authorization"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    for k, v in auth.items():
        if k.lower() == "authorization" and urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(endpoint()).netloc:
            req.add_unredirected_header(k, v)  # never sent on to another host (a CDN) by a redirect
    return urllib.request.urlopen(req, timeout=_TIMEOUT)


def _transfer(url: str, part: str, total: int | None, auth: dict[str, str]) -> None:
    """Append the missing bytes of ``url`` to ``part`` (HTTP Range from its current size), driving
    ComfyUI's progress bar and honouring Cancel between chunks (the data received so far stays)."""
    progress_cls, check_interrupt = _comfy()
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if total is not None and have > total:
        os.remove(part)
        have = 0
    bar = progress_cls(max(total, 1)) if (progress_cls and total) else None
    if total is not None and have == total:
        if bar:
            bar.update_absolute(total, total)
        return
    with _open(url, have, auth) as r:
        if have and r.status != 206:  # the server ignored the Range: start again
            have = 0
        elif have:
            m = re.match(r"bytes (\d+)-", r.headers.get("Content-Range", ""))
            if m and int(m.group(1)) != have:
                raise OSError(f"the server resumed at byte {m.group(1)} instead of {have}")
        with open(part, "ab" if have else "wb") as f:
            if bar:
                bar.update_absolute(have, total)
            shown = time.monotonic()
            while True:
                chunk = r.read(_CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                have += len(chunk)
                if bar and (time.monotonic() - shown >= _PROGRESS_SECONDS or have == total):
                    bar.update_absolute(min(have, total), total)
                    shown = time.monotonic()
                check_interrupt()
    if total is not None and have != total:
        raise OSError(f"the connection closed after {have} of {total} bytes")
    if bar:
        bar.update_absolute(total, total)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_known(ckpt_name: str, entry: dict, target_dir: str) -> str:
    """Fetch known weights into ``target_dir/ckpt_name`` (see the module's docstring)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    final = os.path.join(target_dir, ckpt_name)
    repo_id, revision = entry["repo_id"], entry.get("revision", "main")
    os.makedirs(target_dir, exist_ok=True)
    by_hand = (f"Download the file by hand and put it in {target_dir} as '{ckpt_name}', or set "
               f"HF_ENDPOINT to a reachable mirror.")

    filename = entry.get("filename")
    if not filename:
        try:
            files = list_repo_files(entry)
        except Exception as e:
            raise ValueError(
                f"Could not download SDMatte weights '{ckpt_name}': listing the files of {repo_page(entry)} "
                f"failed ({_describe(e)}). {by_hand}") from None
        filename = choose_weight_file(ckpt_name, entry, files, target_dir)

    url = hub_url(entry, filename)
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint()))
        auth = build_hf_headers()
    except Exception as e:
        raise ValueError(
            f"Could not download SDMatte weights '{ckpt_name}' from {url} ({_describe(e)}). {by_hand}") from None
    total, etag = meta.size, (meta.etag or "")
    staging = os.path.join(target_dir, STAGING_DIR)
    os.makedirs(staging, exist_ok=True)
    part = _part_path(staging, ckpt_name, f"{repo_id}/{revision}/{filename}/{etag}/{total}")
    _drop_stale_parts(staging, ckpt_name, keep=part)
    had = os.path.getsize(part) if os.path.exists(part) else 0
    log.info("PromptMatte: downloading %s (%s bytes) to %s%s", url, total, final,
             f", resuming after {had} bytes" if had else "")
    try:
        _transfer(meta.location or url, part, total, auth)
    except Exception as e:
        if not _is_interrupt(e):
            kept = os.path.getsize(part) if os.path.exists(part) else 0
            resume = (f" The {kept} bytes received are kept in {staging}: loading '{ckpt_name}' again "
                      f"continues from there." if kept else "")
            if not kept:
                _drop_stale_parts(staging, ckpt_name, keep="")
                _remove_staging_if_empty(staging)
            raise ValueError(
                f"Could not download SDMatte weights '{ckpt_name}' from {url} ({_describe(e)}).{resume} "
                f"{by_hand}") from None
        raise
    if re.fullmatch(r"[0-9a-f]{64}", etag) and _sha256(part) != etag:
        os.remove(part)
        _remove_staging_if_empty(staging)
        raise ValueError(
            f"Could not download SDMatte weights '{ckpt_name}' from {url}: the data received does not match "
            f"the Hub's SHA-256 ({etag}) and was discarded. Load '{ckpt_name}' again to download it anew. "
            f"{by_hand}")
    os.replace(part, final)  # same file system: atomic, the final name only ever holds a whole file
    _remove_staging_if_empty(staging)
    return final


def _is_interrupt(e: BaseException) -> bool:
    """ComfyUI's Cancel (InterruptProcessingException): re-raised as is, the partial data kept."""
    return type(e).__name__ == "InterruptProcessingException"
