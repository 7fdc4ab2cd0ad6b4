"""What a matte becomes on the way out, for both front doors (the ComfyUI nodes and the batch command).

- :func:`cutouts`: the decontaminated foreground colours and the RGBA cut-out of images under their
  alphas (Matte Composite's ``foreground`` and ``rgba`` outputs; the batch command's ``--foreground``
  and ``--rgba`` files);
- :func:`alpha_levels` / :func:`image_levels`: float [0, 1] to 8- or 16-bit pixels, with ComfyUI's
  Save Image conversion (``clip(255 · x).astype(uint8)``, truncation), so a file the batch command
  writes is the file a graph ending in Save Image writes;
- :func:`png_bytes`: one PNG encoding (Pillow, fixed settings), so the same pixels give the same
  bytes in any process;
- :func:`write_atomic`: a file appears under its name only complete (temporary name, fsync, rename).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

PNG_COMPRESS_LEVEL = 4  # ComfyUI's Save Image default


def cutouts(image, alpha, estimate_foreground: bool = True):
    """(foreground (N, H, W, 3), rgba (N, H, W, 4)) float32 for images (N, H, W, 3) in [0, 1] and alphas
    (N, H, W) in [0, 1] of the same size. ``estimate_foreground`` recovers the subject's own colours at
    soft edges (:mod:`.foreground`); off, the foreground is the image itself."""
    import torch

    image = image.float()
    alpha = alpha.float().clamp(0, 1)
    if estimate_foreground:
        from .foreground import estimate_foreground as estimate

        fg = estimate(image.movedim(-1, 1), alpha[:, None]).movedim(1, -1).clamp(0, 1)
    else:
        fg = image
    return fg, torch.cat([fg, alpha[..., None]], dim=-1)


def alpha_levels(alpha, bits: int = 8) -> np.ndarray:
    """(H, W) uint8 (bits 8) or uint16 (bits 16) grey levels of an alpha in [0, 1] (tensor or array)."""
    values = _as_array(alpha)
    if bits == 8:
        return np.clip(255.0 * values, 0, 255).astype(np.uint8)
    if bits == 16:
        return np.clip(65535.0 * values, 0, 65535).astype(np.uint16)
    raise ValueError(f"alpha bits must be 8 or 16, got {bits}")


def image_levels(image) -> np.ndarray:
    """(H, W, C) uint8 of an image in [0, 1] (tensor or array), as ComfyUI's Save Image converts it."""
    return np.clip(255.0 * _as_array(image), 0, 255).astype(np.uint8)


def _as_array(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    return np.asarray(values, dtype=np.float32)


def png_bytes(levels: np.ndarray) -> bytes:
    """PNG file contents of grey (H, W) uint8 / uint16, RGB (H, W, 3) or RGBA (H, W, 4) uint8 pixels."""
    from PIL import Image

    levels = np.ascontiguousarray(levels)
    if levels.dtype == np.uint16:
        img = Image.frombytes("I;16", (levels.shape[1], levels.shape[0]), levels.astype("<u2").tobytes())
    elif levels.dtype == np.uint8 and levels.ndim == 2:
        img = Image.fromarray(levels, mode="L")
    elif levels.dtype == np.uint8 and levels.ndim == 3 and levels.shape[2] in (3, 4):
        img = Image.fromarray(levels, mode="RGB" if levels.shape[2] == 3 else "RGBA")
    else:
        raise ValueError(f"cannot write {levels.dtype} pixels of shape {levels.shape} as a PNG")
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def partial_name(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is renamed (hidden, same folder)."""
    return path.with_name(f".{path.name}.part")


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen incomplete: written to a hidden
    temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    path = Path(path)
    tmp = partial_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
