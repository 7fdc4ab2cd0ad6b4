"""Fetching a known SDMatte checkpoint from the Hugging Face Hub (``huggingface_hub``) on first use.

Honours ``HF_ENDPOINT`` (mirrors), ``HF_HUB_OFFLINE`` and ``HF_TOKEN``. Never leaves a partial file
under the final name.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

log = logging.getLogger("PromptMatte")


def hub_url(entry: dict) -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{entry['repo_id']}/resolve/{entry.get('revision', 'main')}/{entry['filename']}"


def offline() -> bool:
    try:
        from huggingface_hub import constants
        if constants.HF_HUB_OFFLINE:
            return True
    except Exception:  # pragma: no cover - huggingface_hub missing
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _comfy_tqdm():
    """A tqdm class that also drives ComfyUI's progress bar for the running node."""
    import comfy.utils
    from tqdm.auto import tqdm

    class ComfyTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)
            self._comfy_bar = comfy.utils.ProgressBar(int(self.total or 0) or 1)

        def update(self, n=1):
            out = super().update(n)
            if self.total:
                self._comfy_bar.update_absolute(int(self.n), int(self.total))
            return out

    return ComfyTqdm


def download_known(ckpt_name: str, entry: dict, target_dir: str) -> str:
    """Fetch known weights into ``target_dir/ckpt_name``; never leaves a partial file under that name.

    huggingface_hub downloads into a hidden temporary folder inside ``target_dir`` (so the final
    ``os.replace`` is an atomic rename on the same file system); the folder is removed afterwards,
    whether the download worked or not.
    """
    from huggingface_hub import hf_hub_download

    final = os.path.join(target_dir, ckpt_name)
    os.makedirs(target_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".promptmatte-download-", dir=target_dir)
    log.info("PromptMatte: downloading %s to %s", hub_url(entry), final)
    try:
        got = hf_hub_download(
            repo_id=entry["repo_id"],
            filename=entry["filename"],
            revision=entry.get("revision", "main"),
            local_dir=tmp,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            tqdm_class=_comfy_tqdm(),
        )
        os.replace(got, final)
    except Exception as e:
        raise ValueError(
            f"Could not download SDMatte weights '{ckpt_name}' from {hub_url(entry)} "
            f"({type(e).__name__}: {e}). Download the file by hand and put it in {target_dir} as "
            f"'{ckpt_name}', or set HF_ENDPOINT to a reachable mirror.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
