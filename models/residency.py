"""Handing a finished stage's memory-mapped weights back to the page cache.

Weights read from a safetensors file are views of a memory map: every page a forward pass
touches stays in the process's resident set until the map is closed, so after one call the
process holds all 3.5 GB of SDMatte's UNet while the autoencoder decodes. Once the UNet has run,
its pages are only needed again at the next call. ``release_mapped_pages`` tells the kernel so
(``madvise(MADV_DONTNEED)``): the pages leave this process but stay in the page cache, and the
next call maps them back without reading the disk.

Only pages of file mappings that hold no modified (copy-on-write) page are released, so the
values can never change: a clean private file page is re-read from the same file. Elsewhere
(other platforms, weights copied into ordinary memory, GPU tensors) this does nothing.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections.abc import Iterable

import torch

_MADV_DONTNEED = 4  # Linux
_PAGE = mmap.PAGESIZE


def _clean_file_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's file mappings with no copy-on-write page, from /proc/self/smaps."""
    mappings, current = [], None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                has_file = len(fields) >= 6 and fields[5].startswith("/")
                current = (start, end) if has_file else None
            elif fields[0] == "Anonymous:" and current is not None:
                if int(fields[1]) == 0:
                    mappings.append(current)
                current = None
    return mappings


def _madvise():
    libc = ctypes.CDLL(None, use_errno=True)
    madvise = libc.madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise


def release_mapped_pages(tensors: Iterable[torch.Tensor]) -> int:
    """Drop from the resident set the pages of ``tensors`` that come from clean file mappings.

    Returns the number of bytes advised. Values are unaffected (see the module docstring).
    """
    if not sys.platform.startswith("linux"):
        return 0
    storages = (t.untyped_storage() for t in tensors if t.device.type == "cpu")
    ranges = sorted({(s.data_ptr(), s.data_ptr() + s.nbytes()) for s in storages if s.nbytes() > 0})
    if not ranges:
        return 0
    mappings = _clean_file_mappings()
    madvise = _madvise()
    released, index = 0, 0
    for start, end in ranges:
        while index < len(mappings) and mappings[index][1] <= start:
            index += 1
        if index == len(mappings) or not (mappings[index][0] <= start and end <= mappings[index][1]):
            continue  # not (wholly) inside a clean file mapping: ordinary memory, leave it
        # Whole pages only, rounding inwards: a page shared with a neighbour is left to the neighbour's range.
        first = -(-start // _PAGE) * _PAGE
        last = end // _PAGE * _PAGE
        if last > first and madvise(first, last - first, _MADV_DONTNEED) == 0:
            released += last - first
    return released
