"""SAM's prompt encoder: clicks and box corners -> sparse tokens, a low-res mask -> a dense map.

Coordinates are in the pixels of the resized (longest side 1024), unpadded input image, as after
``transforms.scale_coords``. Tensor names match the released checkpoints under ``prompt_encoder.``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import SamConfig
from .layers import LayerNorm2d

# Point labels as SAM reads them.
LABEL_PADDING = -1  # "not a point": the token SAM appends when there is no box
LABEL_BACKGROUND = 0
LABEL_FOREGROUND = 1


class PositionEmbeddingRandom(nn.Module):
    """Fourier features of positions through the checkpoint's fixed gaussian matrix (2, D / 2)."""

    def __init__(self, num_pos_feats: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.zeros(2, num_pos_feats))

    def encode(self, unit_coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) positions (x, y) in [0, 1] -> (..., D): [sin, cos] of 2π·(2p - 1)·G."""
        matrix = self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * ((2 * unit_coords.to(matrix.dtype) - 1) @ matrix)
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """(D, height, width): the encoding of each cell centre of the embedding grid."""
        matrix = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(height, device=matrix.device, dtype=matrix.dtype) + 0.5) / height
        xs = (torch.arange(width, device=matrix.device, dtype=matrix.dtype) + 0.5) / width
        coords = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)
        return self.encode(coords).permute(2, 0, 1)

    def points(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """(B, N, 2) pixel coordinates (x, y) in an image of (H, W) -> (B, N, D)."""
        scale = coords.new_tensor([image_size[1], image_size[0]])
        return self.encode(coords / scale)


class SamPromptEncoder(nn.Module):
    def __init__(self, config: SamConfig):
        super().__init__()
        dim = config.prompt_embed_dim
        self.embed_dim = dim
        self.input_image_size = (config.image_size, config.image_size)
        self.image_embedding_size = (config.grid_size, config.grid_size)
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        # 0: background click, 1: foreground click, 2: box top-left, 3: box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        hidden = config.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, hidden // 4, kernel_size=2, stride=2),
            LayerNorm2d(hidden // 4),
            nn.GELU(),
            nn.Conv2d(hidden // 4, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    @property
    def mask_input_size(self) -> tuple[int, int]:
        """(256, 256): the low-res mask size the decoder returns and accepts back."""
        return (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])

    def get_dense_pe(self) -> torch.Tensor:
        """(1, D, 64, 64): positional encoding of the image embedding's grid."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) pixel coords + (B, N) labels (1 fg, 0 bg, -1 padding) -> (B, N (+1), D).

        ``pad`` appends SAM's "not a point" token, which SAM adds whenever no box is given.
        """
        coords = coords + 0.5  # pixel centres
        if pad:
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), LABEL_PADDING)], dim=1)
        encoded = self.pe_layer.points(coords, self.input_image_size)
        labels = labels[..., None]
        # Padding tokens carry no position, only their learned embedding.
        return torch.where(
            labels == LABEL_PADDING,
            self.not_a_point_embed.weight,
            encoded
            + torch.where(labels == LABEL_BACKGROUND, self.point_embeddings[0].weight, 0.0)
            + torch.where(labels == LABEL_FOREGROUND, self.point_embeddings[1].weight, 0.0),
        )

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) pixel boxes x1, y1, x2, y2 -> (B, 2, D): one token per corner."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        encoded = self.pe_layer.points(corners, self.input_image_size)
        corner_embeddings = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return encoded + corner_embeddings

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, 256, 256) mask logits -> (B, D, 64, 64)."""
        return self.mask_downscaling(masks)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (sparse (B, N, D), dense (B, D, 64, 64)); B from the first prompt given (1 if none).

        points: ((B, N, 2) pixel coords, (B, N) labels); boxes (B, 4); masks (B, 1, 256, 256).
        Sparse tokens are the points (then the padding token when there is no box) and the box
        corners, in that order.
        """
        weight = self.no_mask_embed.weight
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        sparse = [weight.new_empty(batch, 0, self.embed_dim)]
        if points is not None:
            sparse.append(self.embed_points(points[0].to(weight.dtype), points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self.embed_boxes(boxes.to(weight.dtype)))
        if masks is not None:
            dense = self.embed_masks(masks.to(weight.dtype))
        else:
            dense = weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense
