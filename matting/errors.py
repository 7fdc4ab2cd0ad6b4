"""Errors the matting core raises for problems the user can fix."""


class PromptError(ValueError):
    """A prompt, image or setting the user gave cannot be used.

    The message names the problem and how to fix it; nodes show it as is.
    """
