"""Where matting weights live and which ones we know about (fetching them: ``downloads``).

- Folder ``matting`` in ComfyUI's ``folder_paths`` (``models/matting``, any family) and folder
  ``sdmatte`` (``models/sdmatte`` first: SDMatte downloads go there, then the legacy
  ``models/SDMatte``), each followed by its ``extra_model_paths.yaml`` entries (ComfyUI reads that
  file before custom nodes load; we keep its entries and add ours in front). The loader lists
  both; a name in both is taken from ``matting``.
- Folder ``sams`` (``models/sams``, where the SAM node packs keep Segment Anything checkpoints):
  declared when no other pack has, searched for companion files (MAM's SAM checkpoint).
- Known weights: ``known_models.json`` next to this file (the only place repo and file names live).
  They are offered in the loader's list even when absent and fetched with ``huggingface_hub`` on
  first use (``downloads``: resumable, progress on the node; honours ``HF_ENDPOINT``,
  ``HF_HUB_OFFLINE``, ``HF_TOKEN``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

import folder_paths

from .downloads import download_known, hub_url, offline, source_text

FOLDER_NAME = "sdmatte"
LEGACY_FOLDER_NAME = "SDMatte"
GENERAL_FOLDER_NAME = "matting"  # any family's weights
SAM_FOLDER_NAME = "sams"  # the SAM node packs' folder
LISTED_FOLDERS = (GENERAL_FOLDER_NAME, FOLDER_NAME)
EXTENSIONS = {".safetensors", ".pth", ".pt", ".ckpt", ".tar"}  # .tar: SIM's classifier_*.pth.tar
_KNOWN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "known_models.json")



def _same_dir(a: str, b: str) -> bool:
    if os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b)):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _register(name: str, ours: list[str]) -> None:
    existing = []
    if name in folder_paths.folder_names_and_paths:
        existing = list(folder_paths.folder_names_and_paths[name][0])
    paths = ours + [p for p in existing if not any(_same_dir(p, o) for o in ours)]
    folder_paths.folder_names_and_paths[name] = (paths, set(EXTENSIONS))


def register_model_folder() -> None:
    """Declare the ``matting``, ``sdmatte`` and (when no other pack has) ``sams`` folders (idempotent)."""
    default = os.path.join(folder_paths.models_dir, FOLDER_NAME)
    legacy = os.path.join(folder_paths.models_dir, LEGACY_FOLDER_NAME)
    ours = [default]
    if not _same_dir(default, legacy):  # case-insensitive file systems: one folder
        ours.append(legacy)
    _register(FOLDER_NAME, ours)
    _register(GENERAL_FOLDER_NAME, [os.path.join(folder_paths.models_dir, GENERAL_FOLDER_NAME)])
    if SAM_FOLDER_NAME not in folder_paths.folder_names_and_paths:  # a SAM pack's own declaration wins
        _register(SAM_FOLDER_NAME, [os.path.join(folder_paths.models_dir, SAM_FOLDER_NAME)])


def model_folders() -> list[str]:
    """Every folder the loader lists, ``matting`` ones first."""
    register_model_folder()
    return [path for name in LISTED_FOLDERS for path in folder_paths.get_folder_paths(name)]


def sdmatte_folders() -> list[str]:
    register_model_folder()
    return folder_paths.get_folder_paths(FOLDER_NAME)


def download_folder() -> str:
    return sdmatte_folders()[0]


@lru_cache(maxsize=1)
def known_models() -> dict[str, dict]:
    with open(_KNOWN_FILE, encoding="utf-8") as f:
        models = json.load(f)["models"]
    for name, entry in models.items():
        if not entry.get("repo_id") or bool(entry.get("filename")) == bool(entry.get("match")):
            raise ValueError(f"{_KNOWN_FILE}: entry '{name}' needs a repo_id and exactly one of 'filename' "
                             f"(the file in the repository) or 'match' (found by listing the repository)")
        if os.path.splitext(name)[1].lower() not in EXTENSIONS:
            raise ValueError(f"{_KNOWN_FILE}: entry '{name}' must end in one of {', '.join(sorted(EXTENSIONS))}")
    return models


def known_sources_text() -> str:
    """One line per known entry: its name and where it is downloaded from (for the loader's tooltip)."""
    return "\n".join(f"{name}: {entry.get('description', name)}, from {source_text(entry)}"
                     for name, entry in known_models().items())


# Preselected in the loader: confirmed file name, safetensors (memory-mapped, nothing to unpickle).
DEFAULT_CHECKPOINT = "SDMatte.safetensors"

HF_COMPONENTS = ("unet", "vae")  # a folder holding these is one model in the authors' HF layout


def hf_folders() -> dict[str, str]:
    """Model folders in the authors' Hugging Face layout (``<name>/unet/``, ``<name>/vae/``, ...)
    directly inside an sdmatte folder: name -> full path (first folder wins)."""
    found: dict[str, str] = {}
    for base in model_folders():
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name in found or not e.is_dir():
                continue
            if all(os.path.isdir(os.path.join(e.path, c)) for c in HF_COMPONENTS):
                found[e.name] = e.path
    return found


def checkpoint_names() -> list[str]:
    """Files found in the sdmatte folders (not hidden ones), HF-layout model folders (listed as one
    entry, not as their component files), plus the known weights (downloaded on first use)."""
    register_model_folder()
    folders = hf_folders()
    names = set()
    for n in (n for name in LISTED_FOLDERS for n in folder_paths.get_filename_list(name)):
        parts = n.replace("\\", "/").split("/")
        # hidden files and folders (downloads in progress live in .promptmatte-download/) are not listed
        if parts[0] not in folders and not any(p.startswith(".") for p in parts) and _is_weights_name(n):
            names.add(n)
    names.update(folders)
    names.update(known_models())
    return sorted(names, key=str.lower)


def _is_weights_name(name: str) -> bool:
    """``.tar`` is listed only as ``.pth.tar`` (a torch file), not any archive."""
    return not name.lower().endswith(".tar") or name.lower().endswith(".pth.tar")


def find_checkpoint(ckpt_name: str) -> str | None:
    """Full path of a listed file or HF-layout folder, or None."""
    register_model_folder()
    for name in LISTED_FOLDERS:
        path = folder_paths.get_full_path(name, ckpt_name)
        if path is not None:
            return path
    return hf_folders().get(ckpt_name)


def resolve_checkpoint(ckpt_name: str) -> str:
    """Full path of ``ckpt_name``; downloads a known but absent file first."""
    path = find_checkpoint(ckpt_name)
    if path is not None:
        return path
    folders = ", ".join(model_folders())
    entry = known_models().get(ckpt_name)
    if entry is None:
        raise ValueError(
            f"Matting checkpoint '{ckpt_name}' was not found in the model folder(s) {folders}. "
            f"Put the file there (extensions {', '.join(sorted(EXTENSIONS))}) and refresh the node list, "
            f"or pick one of: {', '.join(checkpoint_names())}.")
    target = download_folder()
    if offline():
        what = hub_url(entry) if entry.get("filename") else f"the {entry['match']} weights from {hub_url(entry)}"
        raise ValueError(
            f"SDMatte weights '{ckpt_name}' are not on disk and HF_HUB_OFFLINE is set, so they cannot "
            f"be downloaded. Download {what} and put it in {target} as '{ckpt_name}', "
            f"or unset HF_HUB_OFFLINE.")
    return download_known(ckpt_name, entry, target)




def companion_names() -> list[str]:
    """Files a user may pick as a family's second weights file (SAM checkpoints, classifiers):
    those in ``sams`` and in the listed matting folders."""
    register_model_folder()
    names = {n for folder in (SAM_FOLDER_NAME, *LISTED_FOLDERS) for n in folder_paths.get_filename_list(folder)
             if _is_weights_name(n) and not any(p.startswith(".") for p in n.replace("\\", "/").split("/"))}
    return sorted(names, key=str.lower)


def companion_finder(checkpoint_path: str, chosen: str = "auto"):
    """``find_companion`` for ``load_matting_model``: the file the user chose, else the first of the
    companion's usual names found in its usual folder, our matting folders, or beside the checkpoint."""
    register_model_folder()

    def find(companion) -> str | None:
        if chosen and chosen != "auto":
            for folder in (SAM_FOLDER_NAME, *LISTED_FOLDERS):
                path = folder_paths.get_full_path(folder, chosen)
                if path is not None:
                    return path
            raise ValueError(f"The companion file '{chosen}' was not found in models/{SAM_FOLDER_NAME} or the "
                             f"matting folders; pick another one or 'auto'.")
        folders = [companion.folder] if companion.folder in folder_paths.folder_names_and_paths else []
        for file_name in companion.file_names:
            for folder in (*folders, *LISTED_FOLDERS):
                path = folder_paths.get_full_path(folder, file_name)
                if path is not None:
                    return path
            beside = os.path.join(os.path.dirname(checkpoint_path), file_name)
            if os.path.isfile(beside):
                return beside
        return None

    return find


def companion_folders(companion) -> list[str]:
    """Where ``companion_finder`` looks for ``companion`` (for messages)."""
    register_model_folder()
    names = [companion.folder] if companion.folder in folder_paths.folder_names_and_paths else []
    return [path for name in (*names, *LISTED_FOLDERS) for path in folder_paths.get_folder_paths(name)]
