"""SAM's image encoder: a ViT over 16x16 patches of the padded 1024² image (ViTDet style).

Most blocks attend within 14x14-token windows; the blocks in ``global_attn_indexes`` attend over
the whole 64x64 grid. Attention adds SAM's decomposed relative-position terms (one table per
axis). A neck maps the tokens to the 256-channel image embedding the decoder reads.

Tensor names match the released checkpoints under ``image_encoder.``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ENCODER_LAYER_NORM_EPS, SamConfig
from .layers import LayerNorm2d, MLPBlock

# Query rows handled per attention call: the relative-position bias of a global block is
# (rows, 4096) per head, so all 4096 rows at once would cost 64 MB per head and image.
ATTENTION_QUERY_CHUNK = 1024


def encoder_memory_bytes(config: SamConfig, batch: int, element_size: int) -> int:
    """Working memory of one ``SamImageEncoder`` pass over ``batch`` images, weights excluded.

    The largest tensors alive at once (T = one image's tokens, 64 * 64 * embed_dim elements):
    in the MLP the block input and its residual (2T) plus the hidden layer and its GELU
    (2 * mlp_ratio * T); in a global block's attention qkv (3T), the output (T), the norm and the
    residual (2T), and per query chunk the relative-position bias plus one more map of its size
    (torch's CPU attention works in blocks and does not keep the whole score matrix; measured:
    ViT-B 473 MB for the whole SAM pass, see bench/bench_sam.py).
    """
    grid = config.grid_size**2
    tokens = grid * config.embed_dim * element_size
    chunk = min(ATTENTION_QUERY_CHUNK, grid)
    attention = 6 * tokens + 2 * config.num_heads * chunk * grid * element_size
    mlp = (2 + 2 * config.mlp_ratio) * tokens
    return int(batch * max(attention, mlp))


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, H / P, W / P, C): one strided convolution, channels last."""

    def __init__(self, config: SamConfig):
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(3, config.embed_dim, kernel_size=p, stride=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def relative_position_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """(2 * size - 1, D) table -> (size, size, D): entry [i, j] is the embedding of offset i - j.

    Only equal query and key sizes occur in SAM (windows and the full grid), and the tables are
    stored at exactly those sizes, so no interpolation is needed.
    """
    if table.shape[0] != 2 * size - 1:
        raise ValueError(f"relative position table has {table.shape[0]} rows, expected {2 * size - 1}")
    offsets = torch.arange(size, device=table.device)
    index = offsets[:, None] - offsets[None, :] + (size - 1)
    return table[index]


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) token map with decomposed relative positions.

    The relative terms are added to the scaled logits q·k/sqrt(d): for query (y, x) and key
    (y', x'), q·R_h[y - y'] + q·R_w[x - x'] with the unscaled query, as SAM does.
    """

    def __init__(self, config: SamConfig, input_size: int):
        super().__init__()
        dim = config.embed_dim
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.input_size = input_size
        self.qkv = nn.Linear(dim, dim * 3, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = config.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size - 1, self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, S, S, C) -> (N, S, S, C); N counts windows (or images for a global block)."""
        n, h, w, _ = x.shape
        # (3, N, heads, S*S, head_dim)
        qkv = self.qkv(x).reshape(n, h * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.use_rel_pos:
            rel_h = relative_position_table(self.rel_pos_h, h)  # (h, h', D)
            rel_w = relative_position_table(self.rel_pos_w, w)  # (w, w', D)
        out = torch.empty_like(q)
        chunk = min(ATTENTION_QUERY_CHUNK, h * w)
        # Inference: one bias buffer for every chunk; a fresh 200 MB map per chunk (ViT-B's global
        # blocks) costs more in page faults than the add that fills it.
        reuse = self.use_rel_pos and not torch.is_grad_enabled()
        bias_buffer = q.new_empty(n, self.num_heads, chunk, h, w) if reuse else None
        for start in range(0, h * w, chunk):
            stop = min(start + chunk, h * w)
            q_rows = q[:, :, start:stop]
            bias = None
            if self.use_rel_pos:
                rows = torch.arange(start, stop, device=x.device)
                q_grid = q_rows.reshape(n, self.num_heads, stop - start, self.head_dim)
                # (N, heads, rows, h') and (N, heads, rows, w'): the two axes' terms per query row.
                term_h = torch.einsum("bnrc,rkc->bnrk", q_grid, rel_h[rows // w])
                term_w = torch.einsum("bnrc,rkc->bnrk", q_grid, rel_w[rows % w])
                if reuse:
                    bias = torch.add(term_h[..., :, None], term_w[..., None, :], out=bias_buffer[:, :, : stop - start])
                else:
                    bias = term_h[..., :, None] + term_w[..., None, :]
                bias = bias.reshape(n, self.num_heads, stop - start, h * w)
            out[:, :, start:stop] = F.scaled_dot_product_attention(q_rows, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(n, h, w, -1)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * windows, window, window, C), zero padded at the bottom/right first.

    The padding tokens are zeros after the block's first norm and take part in attention as
    keys, unmasked, exactly as in SAM (64 tokens are padded to 70 for 14-token windows).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * windows, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp, wp, -1)
    return x[:, :h, :w].contiguous() if (hp > h or wp > w) else x


class Block(nn.Module):
    """Pre-norm transformer block on (B, 64, 64, C) tokens; ``window_size`` 0 means global attention."""

    def __init__(self, config: SamConfig, window_size: int):
        super().__init__()
        dim = config.embed_dim
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=ENCODER_LAYER_NORM_EPS)
        self.attn = Attention(config, window_size if window_size > 0 else config.grid_size)
        self.norm2 = nn.LayerNorm(dim, eps=ENCODER_LAYER_NORM_EPS)
        self.mlp = MLPBlock(dim, config.mlp_dim, nn.GELU)

    @property
    def is_global(self) -> bool:
        return self.window_size == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            size = (x.shape[1], x.shape[2])
            x, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded, size)
        else:
            x = self.attn(x)
        if torch.is_grad_enabled():
            x = shortcut + x
            return x + self.mlp(self.norm2(x))
        # Inference: each sum written over the fresh branch output (the same sums, no new map).
        x = x.add_(shortcut)
        return self.mlp(self.norm2(x)).add_(x)


class SamImageEncoder(nn.Module):
    """(B, 3, 1024, 1024) normalised, padded image -> (B, out_chans, 64, 64) image embedding.

    Separable for families that run their own loop: ``embed`` (patches + absolute positions),
    ``blocks`` (ModuleList, ``block.is_global``), ``neck`` (takes (B, C, 64, 64), channels first).
    """

    def __init__(self, config: SamConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        grid = config.grid_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, config.embed_dim))
        self.blocks = nn.ModuleList(Block(config, config.block_window_size(i)) for i in range(config.depth))
        self.neck = nn.Sequential(
            nn.Conv2d(config.embed_dim, config.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    @property
    def img_size(self) -> int:
        return self.config.image_size

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 1024, 1024) -> tokens (B, 64, 64, embed_dim) with the absolute position embedding added."""
        return self.patch_embed(x) + self.pos_embed

    def forward(self, x: torch.Tensor, return_global_features: bool = False):
        """(B, 3, 1024, 1024) -> (B, out_chans, 64, 64).

        With ``return_global_features``: (embedding, [the output of each global-attention block,
        (B, 64, 64, embed_dim) in block order]) — the intermediate features HQ-SAM and SEMat read.
        """
        x = self.embed(x)
        global_features = []
        for block in self.blocks:
            x = block(x)
            if return_global_features and block.is_global:
                global_features.append(x)
        embedding = self.neck(x.permute(0, 3, 1, 2))
        return (embedding, global_features) if return_global_features else embedding
