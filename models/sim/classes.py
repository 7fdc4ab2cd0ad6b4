"""SIM's 20 matting patterns (the classifier's output order) and a colour for each, for previews."""

from __future__ import annotations

import torch

# The authors' order (scripts/main.py, load_sim_samples): index i is the classifier's class i.
CLASS_NAMES = (
    "defocus",
    "fire",
    "fur",
    "glass_ice",
    "hair_easy",
    "hair_hard",
    "insect",
    "motion",
    "net",
    "plant_flower",
    "plant_leaf",
    "plant_tree",
    "plastic_bag",
    "sharp",
    "smoke_cloud",
    "spider_web",
    "texture_holed",
    "texture_smooth",
    "water_drop",
    "water_spray",
)

# Our own palette (8-bit RGB), one colour per class, related patterns in related hues.
CLASS_COLOURS = (
    (128, 128, 128),  # defocus
    (255, 69, 0),  # fire
    (160, 82, 45),  # fur
    (0, 206, 209),  # glass_ice
    (255, 215, 0),  # hair_easy
    (255, 140, 0),  # hair_hard
    (128, 0, 128),  # insect
    (199, 21, 133),  # motion
    (0, 0, 205),  # net
    (255, 105, 180),  # plant_flower
    (50, 205, 50),  # plant_leaf
    (0, 100, 0),  # plant_tree
    (240, 248, 255),  # plastic_bag
    (220, 20, 60),  # sharp
    (176, 196, 222),  # smoke_cloud
    (138, 43, 226),  # spider_web
    (189, 183, 107),  # texture_holed
    (244, 164, 96),  # texture_smooth
    (30, 144, 255),  # water_drop
    (135, 206, 250),  # water_spray
)


def class_preview(classes: torch.Tensor, image: torch.Tensor | None = None, opacity: float = 0.6) -> torch.Tensor:
    """(B, H, W) class indices (-1 outside the unknown region) -> (B, H, W, 3) RGB in [0, 1].

    Each unknown pixel gets its class's colour, blended over ``image`` ((B, 3, H, W) in [0, 1])
    with ``opacity`` when given, else over black; other pixels show the image (or black).
    """
    palette = torch.tensor(CLASS_COLOURS, dtype=torch.float32, device=classes.device) / 255.0
    known = classes >= 0
    colour = palette[classes.clamp_min(0)]  # (B, H, W, 3)
    base = image.permute(0, 2, 3, 1).float() if image is not None else torch.zeros_like(colour)
    mixed = base * (1 - opacity) + colour * opacity if image is not None else colour
    return torch.where(known[..., None], mixed, base)
