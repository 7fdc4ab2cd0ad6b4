"""Prompt-masked self-attention for the matting UNet.

SDMatte biases every self-attention score towards keys inside the prompt: an additive
``(1 - m) * -10000`` over keys, where ``m`` is the prompt map nearest-resized to the token grid of
each UNet level. Point maps are soft, so the bias is graded, not boolean.

Once per forward pass the UNet turns the (B, 1, h, w) latent-grid bias map into a
``PromptKeys``: the bias at every level's token grid (which may be non-square) and the keys it
does not silence completely. Each self-attention takes its level's kept keys and lets
``scaled_dot_product_attention`` add the bias to the rest, so no (tokens x tokens) score matrix
is built in Python, and nothing in a layer waits for the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

PROMPT_BIAS = -10000.0
# Keys whose bias is this far below their sample's largest get weight exactly 0: they are left out.
PRUNE_MARGIN = 1000.0


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


class PromptKeys:
    """The prompt's key bias at the token grid of every UNet level, and which keys each level keeps.

    Made once per forward pass from the (B, 1, h, w) latent-grid bias map, for ``levels`` grids
    (each stride-2 convolution gives ceil(x / 2)). A key whose bias is ``PRUNE_MARGIN`` below
    its sample's largest bias gets softmax weight exp(-1000 + score difference), which is exactly
    0 in float32 and bfloat16 (and in float16) for any realistic score: leaving it out is exact,
    and for a click or a small box it removes most of the quadratic cost. Each level keeps, for
    every sample, the K keys with the largest bias in token order, K the largest count any
    sample of the batch needs (a sample that needs fewer also gets some of its silenced keys,
    which weigh exactly 0 as well), so one fused attention call serves the whole batch.

    How many keys each level keeps is read once, for all levels together (one wait for the
    device per pass, not one per layer and sample). On the meta device, where no value can be
    read, every key is kept: the same results, without the saving.
    """

    def __init__(self, bias_map: torch.Tensor, levels: int):
        self.map = bias_map
        h, w = bias_map.shape[-2:]
        rows = []
        for _ in range(levels):
            rows.append(bias_for_tokens(bias_map, h * w).flatten(1))  # (B, tokens)
            h, w = (h + 1) // 2, (w + 1) // 2
        self._levels: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        if bias_map.device.type == "meta":
            counts = [row.shape[1] for row in rows]
        else:
            needed = [(row > row.amax(dim=1, keepdim=True) - PRUNE_MARGIN).sum(dim=1).amax() for row in rows]
            counts = torch.stack(needed).tolist()  # the one read from the device
        for row, count in zip(rows, counts):
            tokens = row.shape[1]
            if count >= tokens:
                self._levels[tokens] = (row[:, None, None, :], None)
            else:
                index = row.topk(count, dim=1).indices.sort(dim=1).values
                self._levels[tokens] = (row.gather(1, index)[:, None, None, :], index)

    def for_tokens(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(bias (B, 1, 1, K), kept key indices (B, K) or None when all are kept) for a level's tokens."""
        if num_tokens not in self._levels:  # not a level this pass was planned for: keep every key
            self._levels[num_tokens] = (bias_for_tokens(self.map, num_tokens), None)
        return self._levels[num_tokens]


def _project(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor | None, keys: torch.Tensor | None = None):
    """q, k, v as (B, heads, tokens, head_dim); ``keys`` (B, K) picks the context tokens k and v are made of."""
    batch = hidden_states.shape[0]
    context = hidden_states if context is None else context
    if keys is not None:
        context = context.gather(1, keys.unsqueeze(2).expand(-1, -1, context.shape[2]))
    q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
    head_dim = k.shape[-1] // attn.heads
    return [t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (q, k, v)]


def _output(attn: Attention, out: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, head_dim = out.shape
    out = out.transpose(1, 2).reshape(batch, tokens, heads * head_dim)
    return attn.to_out[1](attn.to_out[0](out))


class PromptBiasAttnProcessor:
    """Attention with an optional key bias on self-attention, via fused SDPA.

    Self-attention takes the bias and the kept keys of its level from ``prompt_keys`` (a
    ``PromptKeys`` made once per pass), or, given only a latent-grid ``attention_mask``, keeps
    every key. Handles the plain transformer attention of SD-style UNets (no group/spatial norm,
    no residual inside the attention module); cross-attention is never masked.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        prompt_keys: PromptKeys | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or (attention_mask is None and prompt_keys is None):
            q, k, v = _project(attn, hidden_states, encoder_hidden_states)
            return _output(attn, F.scaled_dot_product_attention(q, k, v))
        if prompt_keys is None:
            prompt_keys = PromptKeys(attention_mask, levels=0)  # no plan: every key, biased
        bias, keys = prompt_keys.for_tokens(hidden_states.shape[1])
        q, k, v = _project(attn, hidden_states, None, keys)
        return _output(attn, F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype)))



class MaterializedAttnProcessor(PromptBiasAttnProcessor):
    """The authors' formulation, for benchmarks only: diffusers' classic ``AttnProcessor`` path.

    Heads folded into the batch, the bias broadcast over queries as one (B * heads, 1, tokens)
    row, scores = baddbmm(bias, q, k^T, alpha=scale) materialised as (B * heads, tokens, tokens),
    then softmax and bmm. Every key is kept.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, prompt_keys=None):
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
