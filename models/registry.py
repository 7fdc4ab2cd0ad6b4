"""The matting families PromptMatte runs, and which one a checkpoint belongs to."""

from __future__ import annotations

import importlib

from .errors import CheckpointError
from .family import Family, ShapeMap

# One entry per family folder under models/, in the order they are asked. Each exports FAMILY.
FAMILY_MODULES = ("sdmatte", "sim", "mam", "semat", "aim")


def families() -> tuple[Family, ...]:
    """Every registered family (importing a family's package is cheap: no network code)."""
    return tuple(importlib.import_module(f".{name}", __package__).FAMILY for name in FAMILY_MODULES)


def describe_families() -> str:
    """One line per family: its name, the prompts it takes and what its checkpoint holds."""
    return "\n".join(
        f"- {family.title} ({', '.join(family.prompt_kinds)}): {family.looks_like}" for family in families()
    )


def recognise(shapes: ShapeMap, source_name: str = "the checkpoint") -> Family:
    """The family whose checkpoints have these tensor names and shapes.

    A file of no known family gets an error naming what it looks like when a family can tell
    (a Stable Diffusion checkpoint, a bare VAE...) and listing what each family's file holds.
    """
    known = families()
    matching = [family for family in known if family.recognises(shapes)]
    if len(matching) == 1:
        return matching[0]
    if len(matching) > 1:  # a merge of two families' files: refuse rather than guess
        raise CheckpointError(
            f"{source_name} holds the tensors of several matting families "
            f"({', '.join(family.title for family in matching)}); load each family's own file."
        )
    hints = [hint for family in known if family.diagnose is not None and (hint := family.diagnose(shapes))]
    looks = f"It looks like {hints[0]}. " if hints else ""
    raise CheckpointError(
        f"{source_name} is not a matting checkpoint of any family PromptMatte runs. {looks}"
        f"What each family's file holds:\n{describe_families()}"
    )
