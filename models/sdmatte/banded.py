"""The KL autoencoder's encoder and decoder computed in bands of rows: same values, a fraction of the memory.

At 1024² SD2's autoencoder works on maps of up to 1 GB each (256 channels at full resolution)
and a stock forward pass holds several of them at once, plus the copies the convolution library
makes. Here every full-resolution layer runs on bands of rows instead:

- GroupNorm statistics are global per group, so they are taken over the whole map first (in
  float32 pieces of 256 elements added in float64: as exact as torch's own GroupNorm); then
  normalisation, SiLU and the 3x3 convolution run band by band with a one-row halo, and only a
  band of the normalised map ever exists.
- A resnet block writes its residual straight into its output buffer (in place of its input when
  the widths match; into its input's memory, with its hidden map, when the input is at least
  twice as wide) and lets its input go once the first convolution has read it. Blocks of the
  same shape reuse one hidden-map buffer.
- Nearest 2x upsampling followed by a 3x3 convolution is computed as one 2x2 convolution per
  output phase on the low-resolution map: the same sums with 4/9 of the multiply-adds, and the
  upsampled map is never built. SD2's last upsampled map (256 channels at full resolution) is
  larger than any map the last stage holds, but the block that reads it halves the width: it is
  computed once, its statistics taken on the way, into the memory that block's hidden map and
  output then occupy. Where no such block reads it, a map that large is not stored: the layer
  that reads it recomputes it band by band.

Results equal the stock modules' up to float summation order (as exact, tested against float64).
Layer configurations other than SD2's fall back to the stock module for that layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

# Elements of one band of a layer's input (8 MB in float32): small next to the maps, and small
# enough that the allocator recycles band buffers instead of mapping fresh pages for each one
# (glibc maps blocks of 32 MB and more directly; first-touch page faults cost about 0.4 s per GB).
BAND_ELEMENTS = 1 << 21

# Group statistics reduce pieces of this many elements in the map's dtype, then add the pieces in float64.
PIECE = 256

# Nearest 2x upsampling then a 3x3 kernel: output row 2a + p reads low-resolution rows
# (a - 1, a) when p = 0 and (a, a + 1) when p = 1, with kernel rows summed as below (same for columns).
_PHASE_TAPS = torch.tensor(
    [[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64
)


def _bands(shape: torch.Size | tuple[int, ...]):
    """[start, stop) row ranges covering a (B, C, H, W) map, each about BAND_ELEMENTS large."""
    batch, channels, height, width = shape
    rows = max(8, BAND_ELEMENTS // max(1, batch * channels * width))
    for start in range(0, height, rows):
        yield start, min(start + rows, height)


def _params(module: nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A layer's weight and bias on ``like``'s device and dtype (a no-op unless weights are offloaded)."""
    weight = module.weight.to(like.device, like.dtype)
    bias = None if module.bias is None else module.bias.to(like.device, like.dtype)
    return weight, bias


def _is_plain_conv(conv: nn.Module, kernel: int) -> bool:
    """A stride-1, zero-padded ``kernel`` x ``kernel`` convolution keeping the map's size."""
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (kernel, kernel)
        and conv.stride == (1, 1)
        and conv.padding == (kernel // 2, kernel // 2)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def _pieces(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A (R, n) matrix as views of at most ``PIECE`` columns: (R, n // PIECE, PIECE) and the (R, 1, rest)."""
    full = rows.shape[1] // PIECE * PIECE
    parts = (rows[:, :full].view(rows.shape[0], -1, PIECE),) if full else ()
    return parts + ((rows[:, full:].unsqueeze(1),) if full < rows.shape[1] else ())


def _group_moments(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (sample, group) mean and biased variance of a (B, C, H, W) map, each (B, groups) in float64.

    Two passes: the sum, then the centred sum of squares a few groups at a time. Both reduce
    pieces of ``PIECE`` elements in the map's dtype and add the pieces' results in float64. One
    reduction over a whole group (up to 2**22 elements at 1024²) in float32 loses up to 2e-4 of
    the variance (``vector_norm`` accumulates in plain float32) and rounds the mean to float32,
    which in units of the group's spread is its mean/std ratio (20 and more after a constant
    input) times 6e-8; the stock GroupNorm's moments are good to about 1e-7.
    """
    batch = x.shape[0]
    if batch > 1 and not x.is_contiguous():  # e.g. a channel slice of a larger map: each sample is contiguous
        means, variances = zip(*(_group_moments(x[i : i + 1], groups) for i in range(batch)))
        return torch.cat(means), torch.cat(variances)
    grouped = x.reshape(batch * groups, -1)
    count = grouped.shape[1]
    mean = sum(part.sum(dim=-1).double().sum(dim=-1) for part in _pieces(grouped)) / count
    centre = mean.to(x.dtype)
    var = torch.empty_like(mean)
    step = max(1, BAND_ELEMENTS // count)
    for first in range(0, grouped.shape[0], step):
        rows = slice(first, first + step)
        centred = grouped[rows] - centre[rows, None]
        squares = (torch.linalg.vector_norm(part, dim=-1).double().square().sum(dim=-1) for part in _pieces(centred))
        var[rows] = sum(squares) / count
    # about the rounded centre: remove its (tiny) offset from the mean
    var = (var - (mean - centre.double()).square()).clamp_min(0.0)
    return mean.view(batch, groups), var.view(batch, groups)


class _StoredMap:
    """A map held in memory (and its group moments when they were taken as it was written)."""

    def __init__(self, tensor: torch.Tensor, moments: dict | None = None):
        self.tensor = tensor
        self.shape = tuple(tensor.shape)
        self.known_moments = moments or {}
        self.splittable = False  # whether the block that reads it may write its own two maps into it

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return self.tensor[:, :, start:stop]

    def moments(self, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (sample, group) mean and biased variance, each (B, groups) in float64."""
        if groups in self.known_moments:
            return self.known_moments[groups]
        return _group_moments(self.tensor, groups)

    def take(self) -> torch.Tensor:
        """The tensor, no longer held here (so a caller can free or overwrite it)."""
        tensor, self.tensor = self.tensor, None
        return tensor

    def release(self) -> None:
        self.tensor = None


def _pool(parts) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of a whole map from ``(rows, mean, variance)`` of its bands, in float64."""
    counts, means, variances = zip(*parts)  # every band row holds the same number of elements per group
    weights = torch.tensor(counts, dtype=torch.float64, device=means[0].device).view(-1, 1, 1) / sum(counts)
    means, variances = torch.stack(means), torch.stack(variances)
    mean = (weights * means).sum(dim=0)
    return mean, (weights * (variances + (means - mean).square())).sum(dim=0)


class _UpsampledMap:
    """``conv3x3(nearest_upsample_2x(low))``, computed per band of rows and never held whole."""

    def __init__(self, low: torch.Tensor, conv: nn.Module):
        weight, bias = _params(conv, low)
        out_channels = weight.shape[0]
        taps = _PHASE_TAPS.to(weight.device)
        # (p, q, out, in, 2, 2): the 2x2 kernel of output phase (row p, column q), stacked as 4 * out channels
        phases = torch.einsum("pik,ockl,qjl->pqocij", taps, weight.double(), taps)
        self.weight = phases.reshape(4 * out_channels, weight.shape[1], 2, 2).to(weight.dtype)
        self.bias = None if bias is None else bias.repeat(4)
        self.low = low
        batch, _, height, width = low.shape
        self.shape = (batch, out_channels, 2 * height, 2 * width)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        batch, channels, _, _ = self.shape
        low_height, low_width = self.low.shape[-2:]
        first, last = start // 2, (stop + 1) // 2  # low-resolution rows whose two phases cover [start, stop)
        count = last - first
        top, bottom = first - 1, last + 1  # each phase reads one row above or below
        band = self.low[:, :, max(top, 0) : min(bottom, low_height)]
        band = F.pad(band, (1, 1, max(-top, 0), max(bottom - low_height, 0)))
        phases = F.conv2d(band, self.weight, self.bias).view(batch, 2, 2, channels, count + 1, low_width + 1)
        out = phases.new_empty(batch, channels, count, 2, low_width, 2)
        for p in (0, 1):
            for q in (0, 1):
                out[:, :, :, p, :, q] = phases[:, p, q, :, p : p + count, q : q + low_width]
        out = out.view(batch, channels, 2 * count, 2 * low_width)
        return out[:, :, start - 2 * first : stop - 2 * first]

    def moments(self, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``_StoredMap.moments``, band by band, merged as a pooled mean and variance."""
        return _pool(((stop - start, *_group_moments(self.rows(start, stop), groups)) for start, stop in _bands(self.shape)))

    def materialize(self, out: torch.Tensor | None = None, groups: int | None = None) -> _StoredMap:
        """The map computed once into ``out`` (new if None), with its moments for ``groups`` groups taken on the way."""
        out = self.low.new_empty(self.shape) if out is None else out
        parts = []
        for start, stop in _bands(self.shape):
            band = self.rows(start, stop)
            if groups is not None:
                parts.append((stop - start, *_group_moments(band, groups)))
            out[:, :, start:stop] = band
        return _StoredMap(out, {groups: _pool(parts)} if groups is not None else None)

    def take(self) -> torch.Tensor:
        tensor = self.materialize().take()
        self.release()
        return tensor

    def release(self) -> None:
        self.low = None


def _norm_affine(norm: nn.GroupNorm, source, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupNorm over the whole map as a per-channel ``x * scale + shift``, each (B, C, 1, 1)."""
    mean, var = source.moments(norm.num_groups)
    per_group = norm.num_channels // norm.num_groups
    rstd = (var + norm.eps).rsqrt().repeat_interleave(per_group, dim=1)
    mean = mean.repeat_interleave(per_group, dim=1)
    scale, shift = rstd, -mean * rstd
    if norm.affine:
        gamma, beta = (p.to(like.device, torch.float64) for p in (norm.weight, norm.bias))
        scale, shift = scale * gamma, shift * gamma + beta
    batch, channels = scale.shape
    return scale.to(like.dtype).view(batch, channels, 1, 1), shift.to(like.dtype).view(batch, channels, 1, 1)


def _halo(source, start: int, stop: int) -> tuple[torch.Tensor, int]:
    """Rows [start - 1, stop + 1) of ``source`` clipped to the map, and the first row's index."""
    first = max(start - 1, 0)
    return source.rows(first, min(stop + 1, source.shape[2])), first


def _conv3x3_rows(halo: torch.Tensor, start: int, stop: int, height: int, weight, bias, affine=None) -> torch.Tensor:
    """Rows [start, stop) of ``conv3x3(silu(x * scale + shift))`` (or of ``conv3x3(x)``) from a halo band."""
    if affine is not None:
        halo = F.silu(torch.addcmul(affine[1], halo, affine[0]), inplace=True)
    top, bottom = int(start == 0), int(stop == height)  # zero rows where the map ends, halo rows elsewhere
    if top or bottom:
        halo = F.pad(halo, (0, 0, top, bottom))
    return F.conv2d(halo, weight, bias, padding=(0, 1))


def _conv3x3(source, conv: nn.Module, norm: nn.GroupNorm | None = None) -> torch.Tensor:
    """``conv(silu(norm(x)))`` (or ``conv(x)`` without a norm) of a map, band by band."""
    like = source.tensor if isinstance(source, _StoredMap) else source.low
    weight, bias = _params(conv, like)
    affine = None if norm is None else _norm_affine(norm, source, like)
    batch, _, height, width = source.shape
    out = like.new_empty(batch, weight.shape[0], height, width)
    for start, stop in _bands(source.shape):
        halo, _ = _halo(source, start, stop)
        out[:, :, start:stop] = _conv3x3_rows(halo, start, stop, height, weight, bias, affine)
    return out


def _resnet_supported(block: nn.Module) -> bool:
    """A stock ``ResnetBlock2D`` without time embedding or resampling (layers may be drop-in subclasses)."""
    return (
        isinstance(block, ResnetBlock2D)
        and type(block).forward is ResnetBlock2D.forward
        and block.time_emb_proj is None
        and block.upsample is None
        and block.downsample is None
        and isinstance(block.nonlinearity, nn.SiLU)
        and isinstance(block.norm1, nn.GroupNorm)
        and isinstance(block.norm2, nn.GroupNorm)
        and _is_plain_conv(block.conv1, 3)
        and _is_plain_conv(block.conv2, 3)
        and (block.conv_shortcut is None or _is_plain_conv(block.conv_shortcut, 1))
    )


def _splits_input(block: nn.Module, shape) -> bool:
    """Whether ``block`` can write its hidden map and its output into its stored input's memory:
    a supported block with a 1x1 shortcut whose input has at least twice its output's channels."""
    return (
        _resnet_supported(block)
        and block.conv_shortcut is not None
        and shape[1] >= 2 * block.conv1.out_channels
    )


def _resnet(block: ResnetBlock2D, source, spare: torch.Tensor | None = None) -> _StoredMap:
    """``ResnetBlock2D`` without a time embedding, as ``(shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))))``.

    ``spare``: a free buffer the hidden map may use when its shape fits. The result's ``spare``
    is the hidden map's buffer, free once the block has run.
    """
    if not _resnet_supported(block):
        return _StoredMap(block(source.take()))
    like = source.tensor if isinstance(source, _StoredMap) else source.low
    batch, _, height, width = source.shape
    weight1, bias1 = _params(block.conv1, like)
    affine1 = _norm_affine(block.norm1, source, like)
    shortcut = None if block.conv_shortcut is None else _params(block.conv_shortcut, like)
    out_channels = weight1.shape[0]
    shape = (batch, out_channels, height, width)
    # The residual goes into the output buffer as the first pass reads each band; a stored input
    # of the output's width is the output buffer itself, and a stored input of at least twice its
    # width holds both the hidden map and the output (each band is read before it is overwritten,
    # but for the row above the next band, kept aside).
    in_place = shortcut is None and isinstance(source, _StoredMap)
    split = isinstance(source, _StoredMap) and source.splittable and _splits_input(block, source.shape)
    if split:
        hidden, out = source.tensor[:, :out_channels], source.tensor[:, out_channels : 2 * out_channels]
    else:
        fits = spare is not None and tuple(spare.shape) == shape and spare.dtype == like.dtype and spare.device == like.device
        hidden = spare if fits else like.new_empty(shape)
        out = None if in_place else like.new_empty(shape)
    above = None  # split: the input row above the band, as it was before the previous band overwrote it
    for start, stop in _bands(source.shape):
        halo, first = _halo(source, start, stop)
        if above is not None:
            halo = torch.cat([above, halo[:, :, 1:]], dim=2)
        rows = _conv3x3_rows(halo, start, stop, height, weight1, bias1, affine1)
        if out is not None:
            middle = halo[:, :, start - first : stop - first]
            residual = middle if shortcut is None else F.conv2d(middle, *shortcut)
            if split:
                above = source.rows(stop - 1, stop).clone() if stop < height else None
            out[:, :, start:stop] = residual
        hidden[:, :, start:stop] = rows
    halo = middle = residual = above = like = None  # views of the input: it is not needed any more
    if in_place:
        out = source.take()
    else:
        source.release()
    hidden_map = _StoredMap(hidden)
    weight2, bias2 = _params(block.conv2, out)
    affine2 = _norm_affine(block.norm2, hidden_map, out)
    for start, stop in _bands(hidden_map.shape):
        halo, _ = _halo(hidden_map, start, stop)
        out[:, :, start:stop] += _conv3x3_rows(halo, start, stop, height, weight2, bias2, affine2)
    if block.output_scale_factor != 1.0:
        out.div_(block.output_scale_factor)
    result = _StoredMap(out)
    result.spare = hidden
    return result


def _upsampler_supported(upsampler: nn.Module) -> bool:
    return (
        isinstance(upsampler, Upsample2D)
        and upsampler.use_conv
        and upsampler.interpolate
        and not upsampler.use_conv_transpose
        and upsampler.norm is None
        and upsampler.name == "conv"
        and _is_plain_conv(upsampler.conv, 3)
    )


def _downsample(downsampler: nn.Module, source: _StoredMap) -> torch.Tensor:
    """``Downsample2D`` with a convolution and ``padding=0``: pad right and bottom by one, 3x3 stride 2."""
    conv = downsampler.conv
    supported = (
        isinstance(downsampler, Downsample2D)
        and downsampler.use_conv
        and downsampler.padding == 0
        and downsampler.norm is None
        and isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (2, 2)
        and conv.padding == (0, 0)
        and conv.groups == 1
        and source.shape[2] % 2 == 0
    )
    if not supported:
        return downsampler(source.take())
    x = source.tensor
    weight, bias = _params(conv, x)
    batch, _, height, width = x.shape
    out = x.new_empty(batch, weight.shape[0], height // 2, (width + 1 - 3) // 2 + 1)
    for start, stop in _bands(out.shape):
        band = x[:, :, 2 * start : min(2 * stop + 1, height)]
        band = F.pad(band, (0, 1, 0, 2 * stop + 1 - min(2 * stop + 1, height)))
        out[:, :, start:stop] = F.conv2d(band, weight, bias, stride=2)
    return out


def encode(encoder: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """``diffusers.models.autoencoders.vae.Encoder.forward`` in bands. pixels: (B, 3, H, W) in [-1, 1]."""
    if not _is_plain_conv(encoder.conv_in, 3):
        return encoder(pixels)
    source = _StoredMap(_conv3x3(_StoredMap(pixels), encoder.conv_in))
    spare = None
    for block in encoder.down_blocks:
        for resnet in block.resnets:
            source = _resnet(resnet, source, spare)
            spare = getattr(source, "spare", None)
        for downsampler in block.downsamplers or ():
            source, spare = _StoredMap(_downsample(downsampler, source)), None
    # At 1/8 of the resolution the rest is small: the stock modules.
    spare = None
    hidden = encoder.mid_block(source.take())
    return encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(hidden)))


def decode(decoder: nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """``diffusers.models.autoencoders.vae.Decoder.forward`` in bands. latent: (B, C, h, w) after post_quant_conv."""
    source = _StoredMap(decoder.mid_block(decoder.conv_in(latent), None))
    upsamples = sum(1 for block in decoder.up_blocks if block.upsamplers)
    batch, _, height, width = latent.shape
    # The full-resolution map the last stage must hold anyway: anything larger is recomputed, not
    # stored, unless the block that reads it can then keep its own two maps in its memory.
    largest_stored = batch * decoder.conv_out.in_channels * (height << upsamples) * (width << upsamples)
    spare = None
    blocks = list(decoder.up_blocks)
    for index, block in enumerate(blocks):
        for resnet in block.resnets:
            source = _resnet(resnet, source, spare)
            spare = getattr(source, "spare", None)
        for upsampler in block.upsamplers or ():
            spare = None
            if not _upsampler_supported(upsampler):
                source = _StoredMap(upsampler(source.take()))
                continue
            source = _UpsampledMap(source.take(), upsampler.conv)
            reader = blocks[index + 1].resnets[0] if index + 1 < len(blocks) and blocks[index + 1].resnets else None
            if torch.Size(source.shape).numel() <= largest_stored:
                source = source.materialize()
            elif reader is not None and _splits_input(reader, source.shape):
                # computed once, its moments taken on the way; the reader then writes into it
                source = source.materialize(groups=reader.norm1.num_groups)
                source.splittable = True
    spare = None
    head_supported = isinstance(decoder.conv_norm_out, nn.GroupNorm) and isinstance(decoder.conv_act, nn.SiLU)
    if not (head_supported and _is_plain_conv(decoder.conv_out, 3)):
        return decoder.conv_out(decoder.conv_act(decoder.conv_norm_out(source.take())))
    return _conv3x3(source, decoder.conv_out, decoder.conv_norm_out)
