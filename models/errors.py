"""Errors the matting engine raises for the user to read."""


class CheckpointError(ValueError):
    """A weights file that cannot be used, with what it looks like and what to do instead."""
