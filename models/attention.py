"""Prompt-masked self-attention for the matting UNet.

SDMatte biases every self-attention score towards keys inside the prompt: an additive
``(1 - m) * -10000`` over keys, where ``m`` is the prompt map nearest-resized to the token grid of
each UNet level. Point maps are soft, so the bias is graded, not boolean.

The UNet hands each transformer a bias *map* of shape (B, 1, h, w) at the latent grid; the
processor resizes it to its own token grid (which may be non-square), drops the keys the bias
silences completely, and lets ``scaled_dot_product_attention`` add the rest, so no
(tokens x tokens) score matrix is built in Python.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

PROMPT_BIAS = -10000.0


def prompt_attention_bias(prompt_map: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, H, W) prompt map in [0, 1] -> (B, 1, H/8, W/8) additive key bias at the latent grid."""
    latent = F.interpolate(prompt_map, scale_factor=1 / 8, mode="nearest")
    return ((1.0 - latent) * PROMPT_BIAS).to(dtype)


def token_grid(latent_hw: tuple[int, int], num_tokens: int) -> tuple[int, int]:
    """The (h, w) of a UNet level with ``num_tokens`` tokens; each stride-2 conv gives ceil(x / 2)."""
    h, w = latent_hw
    while h * w > num_tokens:
        h, w = (h + 1) // 2, (w + 1) // 2
    if h * w != num_tokens:
        raise RuntimeError(f"no UNet level of a {latent_hw} latent has {num_tokens} tokens")
    return h, w


def bias_for_tokens(bias_map: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(B, 1, h0, w0) latent-grid bias -> (B, 1, 1, num_tokens), broadcast over heads and queries."""
    h, w = token_grid(tuple(bias_map.shape[-2:]), num_tokens)
    if (h, w) != tuple(bias_map.shape[-2:]):
        bias_map = F.interpolate(bias_map, size=(h, w), mode="nearest")
    return bias_map.flatten(2).unsqueeze(1)


def _project(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor | None):
    """q, k, v as (B, heads, tokens, head_dim)."""
    batch = hidden_states.shape[0]
    context = hidden_states if context is None else context
    q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
    head_dim = k.shape[-1] // attn.heads
    return [t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (q, k, v)]


def _output(attn: Attention, out: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, head_dim = out.shape
    out = out.transpose(1, 2).reshape(batch, tokens, heads * head_dim)
    return attn.to_out[1](attn.to_out[0](out))


class PromptBiasAttnProcessor:
    """Attention with an optional latent-grid key bias on self-attention, via fused SDPA.

    Handles the plain transformer attention of SD-style UNets (no group/spatial norm, no
    residual inside the attention module); cross-attention is never masked.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q, k, v = _project(attn, hidden_states, encoder_hidden_states)
        if attention_mask is None or encoder_hidden_states is not None:
            return _output(attn, F.scaled_dot_product_attention(q, k, v))
        bias = bias_for_tokens(attention_mask, k.shape[2]).to(q.dtype)
        out = torch.cat([_attend_to_prompt(q[i : i + 1], k[i : i + 1], v[i : i + 1], bias[i]) for i in range(q.shape[0])])
        return _output(attn, out)


PRUNE_MARGIN = 1000.0


def _attend_to_prompt(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One sample's biased attention over only the keys the bias leaves any weight on.

    A key whose bias is ``PRUNE_MARGIN`` below the largest bias gets softmax weight
    exp(-1000 + score difference), which is exactly 0 in float32 and bfloat16 (and in float16)
    for any realistic score; dropping such keys is therefore exact, and for a click or a small
    box it removes most of the quadratic cost. Shapes: q, k, v (1, heads, tokens, head_dim);
    bias (1, 1, tokens).
    """
    row = bias[0, 0]
    keep = row > row.max() - PRUNE_MARGIN
    if bool(keep.all()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
    index = keep.nonzero().squeeze(1)
    return F.scaled_dot_product_attention(
        q, k.index_select(2, index), v.index_select(2, index), attn_mask=row[index].view(1, 1, 1, -1)
    )


class MaterializedAttnProcessor(PromptBiasAttnProcessor):
    """The authors' formulation, for benchmarks only: diffusers' classic ``AttnProcessor`` path.

    Heads folded into the batch, the bias broadcast over queries as one (B * heads, 1, tokens)
    row, scores = baddbmm(bias, q, k^T, alpha=scale) materialised as (B * heads, tokens, tokens),
    then softmax and bmm.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        q, k, v = _project(attn, hidden_states, encoder_hidden_states)
        batch, heads, tokens, head_dim = q.shape
        q, k, v = (t.reshape(batch * heads, -1, head_dim) for t in (q, k, v))
        if attention_mask is not None and encoder_hidden_states is None:
            bias = bias_for_tokens(attention_mask, k.shape[1]).to(q.dtype)  # (B, 1, 1, keys)
            bias = bias.squeeze(1).repeat_interleave(heads, dim=0)
            scores = torch.baddbmm(bias, q, k.transpose(1, 2), beta=1.0, alpha=attn.scale)
        else:
            empty = q.new_empty(batch * heads, tokens, k.shape[1])
            scores = torch.baddbmm(empty, q, k.transpose(1, 2), beta=0.0, alpha=attn.scale)
        out = torch.bmm(scores.softmax(dim=-1), v)
        return _output(attn, out.view(batch, heads, tokens, head_dim))
