#!/usr/bin/env python3
"""Find the ComfyUI checkout that PromptMatte runs and is tested against.

The one place that knows the lookup order (used by ``scripts/run``,
``scripts/test`` and the test suite):

1. ``COMFYUI_PATH`` (environment variable), if set;
2. the ComfyUI this pack sits in, when the repository was cloned as
   ``ComfyUI/custom_nodes/<pack>`` (two levels up from the repository);
3. ``~/ComfyUI``.

A directory counts as a ComfyUI checkout when it holds ``main.py`` and a
``comfy/`` package. Standard library only: runs before any virtual
environment exists.

As a command: prints the absolute path of the ComfyUI found, or explains what
to do on stderr and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# abspath, not resolve(): a clone symlinked into custom_nodes/ counts where the link sits
REPO = Path(os.path.abspath(__file__)).parent.parent

CLONE_HINT = (
    "Get ComfyUI (needs internet) with:\n"
    "    git clone https://github.com/comfyanonymous/ComfyUI ~/ComfyUI\n"
    "or point COMFYUI_PATH at an existing checkout:\n"
    "    export COMFYUI_PATH=/path/to/ComfyUI"
)


class ComfyUINotFound(RuntimeError):
    """No usable ComfyUI checkout; the message tells the user what to do."""


def is_comfyui(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "comfy").is_dir()


def candidates(repo: Path = REPO, environ=os.environ) -> list[tuple[str, Path]]:
    """Every place looked at, in order, with where it came from."""
    found: list[tuple[str, Path]] = []
    env = environ.get("COMFYUI_PATH", "").strip()
    if env:
        found.append(("COMFYUI_PATH", Path(env).expanduser()))
    # The repository as ComfyUI/custom_nodes/<pack>. Use the path as given
    # (a symlinked clone counts where the link sits) and the resolved one.
    for base in (Path(os.path.abspath(repo)), Path(repo).resolve()):
        if base.parent.name == "custom_nodes":
            found.append(("the ComfyUI this pack is installed in", base.parent.parent))
    home = environ.get("HOME") or str(Path.home())
    found.append(("~/ComfyUI", Path(home).expanduser() / "ComfyUI"))
    return found


def find_comfyui(repo: Path = REPO, environ=os.environ) -> Path:
    """Return the absolute path of the ComfyUI to use, or raise ComfyUINotFound.

    An explicitly set ``COMFYUI_PATH`` that is not a ComfyUI checkout is an
    error (never silently replaced by another ComfyUI).
    """
    looked: list[str] = []
    for origin, path in candidates(Path(repo), environ):
        if is_comfyui(path):
            return path.resolve()
        looked.append(f"  {origin}: {path} (no main.py + comfy/ there)")
        if origin == "COMFYUI_PATH":
            raise ComfyUINotFound(
                f"COMFYUI_PATH={path} is not a ComfyUI checkout "
                f"(it needs main.py and comfy/).\n{CLONE_HINT}"
            )
    raise ComfyUINotFound(
        "ComfyUI not found. Looked in, in order:\n" + "\n".join(looked) + "\n" + CLONE_HINT
    )


def installed_in_comfyui(comfy: Path, repo: Path = REPO) -> bool:
    """True when ComfyUI already loads this repository from its custom_nodes/."""
    custom = (Path(comfy) / "custom_nodes").resolve()
    for base in (Path(os.path.abspath(repo)), Path(repo).resolve()):
        if base.parent.name == "custom_nodes" and base.parent.resolve() == custom:
            return True
    return False


def main(argv: list[str]) -> int:
    try:
        path = find_comfyui()
    except ComfyUINotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "--installed" in argv:
        # exit 0 if ComfyUI already loads this repo from its custom_nodes/
        return 0 if installed_in_comfyui(path) else 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
