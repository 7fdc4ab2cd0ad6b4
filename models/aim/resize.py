"""The three resizes of the AIM authors' test path, reproduced to the bit.

The authors resize with two libraries, and the method's output depends on their exact
arithmetic (the fusion keeps the semantic trimap only where its upsampled value is *exactly*
0 or 255):

- ``skimage_resize``: scikit-image 0.14.5's ``transform.resize`` as ``core/test.py`` calls it
  (order 1, mode 'constant' with cval 0 so border pixels blend with zeros, no anti-aliasing,
  clip to the input's range). Integer images are first scaled by ``1 / 255`` (``img_as_float``);
  the result is float64. Newer scikit-image versions default to other modes and anti-aliasing,
  which changes which pixels are "unknown".
- ``cv2_resize_uint8``: OpenCV's ``cv2.resize(..., INTER_LINEAR)`` of a uint8 image, in its
  11-bit fixed point (and, for an exact 2x reduction, the 2x2 mean OpenCV switches to). Used
  when the shorter side is over 1080 px.
- ``cv2_resize_float``: the same interpolation on float64 maps (the alpha resized back), as
  OpenCV's wheels compute it (through Intel IPP, in double precision).
"""

from __future__ import annotations

import math

import numpy as np
import torch

# OpenCV's INTER_LINEAR on 8-bit images weighs with integers scaled by 2 ** 11.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def skimage_resize_transform(in_shape: tuple[int, int], out_shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """(row_scale, row_shift, col_scale, col_shift): output (y, x) samples input (y * row_scale + row_shift, x * col_scale + col_shift).

    Ideally ``scale = in / out`` and ``shift = scale / 2 - 1 / 2`` (pixel centres at integers).
    scikit-image 0.14.5 instead estimates an affine transform from three corners by a
    normalised least-squares solve (SVD) and keeps its diagonal and translation; the result can
    differ from the ideal in the last bits, which decides whether a sample lands exactly on a
    pixel (and so whether an upsampled trimap value is exactly 0 or 255). So it is computed the
    same way here, with numpy.
    """
    rows, cols = out_shape
    if rows == 1 and cols == 1:  # scikit-image's special case: sample the input's centre
        return 1.0, in_shape[0] / 2.0 - 0.5, 1.0, in_shape[1] / 2.0 - 0.5
    factors = np.asarray(in_shape, dtype=float) / np.asarray(out_shape, dtype=float)
    src = np.array([[1, 1], [1, rows], [cols, rows]]) - 1  # (x, y) corners of the output
    dst = np.zeros(src.shape, dtype=np.double)
    dst[:, 0] = factors[1] * (src[:, 0] + 0.5) - 0.5
    dst[:, 1] = factors[0] * (src[:, 1] + 0.5) - 0.5
    src_matrix, src_n = _centre_and_normalise(src)
    dst_matrix, dst_n = _centre_and_normalise(dst)
    xs, ys, xd, yd = src_n[:, 0], src_n[:, 1], dst_n[:, 0], dst_n[:, 1]
    n = src_n.shape[0]
    system = np.zeros((n * 2, 9))
    system[:n, 0], system[:n, 1], system[:n, 2] = xs, ys, 1
    system[:n, 6], system[:n, 7] = -xd * xs, -xd * ys
    system[n:, 3], system[n:, 4], system[n:, 5] = xs, ys, 1
    system[n:, 6], system[n:, 7] = -yd * xs, -yd * ys
    system[:n, 8], system[n:, 8] = xd, yd
    affine_columns = [0, 1, 2, 3, 4, 5]
    system = system[:, affine_columns + [8]]
    _, _, v = np.linalg.svd(system)
    h = np.zeros((3, 3))
    h.flat[affine_columns + [8]] = -v[-1, :-1] / v[-1, -1]
    h[2, 2] = 1
    h = np.dot(np.linalg.inv(dst_matrix), np.dot(h, src_matrix))
    return float(h[1, 1]), float(h[1, 2]), float(h[0, 0]), float(h[0, 2])


def _centre_and_normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation (mean at 0, mean distance sqrt(2)), as scikit-image 0.14.5 does it."""
    centroid = np.mean(points, axis=0)
    rms = math.sqrt(np.sum((points - centroid) ** 2) / points.shape[0])
    norm_factor = math.sqrt(2) / rms
    matrix = np.array(
        [[norm_factor, 0, -norm_factor * centroid[0]], [0, norm_factor, -norm_factor * centroid[1]], [0, 0, 1]]
    )
    homogeneous = np.vstack([points.T, np.ones((points.shape[0],))])
    new = np.dot(matrix, homogeneous).T
    normalised = new[:, :2]
    normalised[:, 0] /= new[:, 2]
    normalised[:, 1] /= new[:, 2]
    return matrix, normalised


def _linear_taps(positions: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """floor and ceil neighbours of float64 sample positions, the fraction, and which neighbours are inside."""
    low = torch.floor(positions)
    high = torch.ceil(positions)
    return low.long(), high.long(), positions - low, (low >= 0) & (low < size), (high >= 0) & (high < size)


def skimage_resize(image: torch.Tensor, out_height: int, out_width: int) -> torch.Tensor:
    """scikit-image 0.14.5 ``resize(image, (out_height, out_width))`` of one image's (..., H, W) maps -> float64.

    uint8 input is first scaled by 1 / 255 (``img_as_float``); float input is used as it is.
    Each output pixel is ``(1 - dr) * top + dr * bottom`` with ``top = (1 - dc) * left +
    dc * right``, evaluated in float64 in this order, with zeros outside the image; the result is
    clipped to the input's [min, max] (values equal to the zero border are kept when 0 is outside
    that range), as the pinned version does.
    """
    if image.dtype == torch.uint8:
        values = image.double() * (1.0 / 255)
    else:
        values = image.double()
    in_height, in_width = values.shape[-2:]
    row_scale, row_shift, col_scale, col_shift = skimage_resize_transform((in_height, in_width), (out_height, out_width))
    cols = torch.arange(out_width, dtype=torch.float64, device=values.device) * col_scale + col_shift
    rows = torch.arange(out_height, dtype=torch.float64, device=values.device) * row_scale + row_shift
    left, right, dc, left_in, right_in = _linear_taps(cols, in_width)
    top, bottom, dr, top_in, bottom_in = _linear_taps(rows, in_height)
    zero = values.new_zeros(())
    # Horizontal pass on every input row (``top`` of a pixel depends only on its row and column).
    left_values = torch.where(left_in, values[..., left.clamp(0, in_width - 1)], zero)
    right_values = torch.where(right_in, values[..., right.clamp(0, in_width - 1)], zero)
    across = (1 - dc) * left_values + dc * right_values
    upper = torch.where(top_in[:, None], across[..., top.clamp(0, in_height - 1), :], zero)
    lower = torch.where(bottom_in[:, None], across[..., bottom.clamp(0, in_height - 1), :], zero)
    out = (1 - dr[:, None]) * upper + dr[:, None] * lower
    # The range of the whole array (all channels of an image), as the pinned version takes it.
    low, high = values.amin(), values.amax()
    kept_zero = (out == 0) & ((low > 0) | (high < 0))
    return torch.where(kept_zero, zero, torch.minimum(torch.maximum(out, low), high))


def _cv2_positions(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's source index and float32 fraction for each output pixel (half-pixel centres)."""
    scale = 1.0 / (out_size / in_size)
    positions = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * scale - 0.5).float()
    index = torch.floor(positions)
    return index.long(), positions - index


def _cv2_coefficients(in_size: int, out_size: int, along_rows: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first index, second index, float32 weight of the second) per output pixel.

    Along columns OpenCV clamps samples before the first / after the last pixel to that pixel
    with weight 0; along rows it keeps the fraction and clamps the row indices instead.
    """
    index, fraction = _cv2_positions(in_size, out_size)
    if not along_rows:
        before, after = index < 0, index >= in_size - 1
        fraction = torch.where(before | after, torch.zeros_like(fraction), fraction)
        index = torch.where(before, torch.zeros_like(index), torch.where(after, torch.full_like(index, in_size - 1), index))
    first = index.clamp(0, in_size - 1)
    second = (index + 1).clamp(0, in_size - 1)
    return first, second, fraction


def _fixed_point(fraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's int16 weights: round-half-even of (1 - f) * 2048 and f * 2048 (float32)."""
    return torch.round((1 - fraction) * _COEF_SCALE).long(), torch.round(fraction * _COEF_SCALE).long()


def cv2_resize_uint8(image: torch.Tensor, out_height: int, out_width: int) -> torch.Tensor:
    """``cv2.resize(image, (out_width, out_height), interpolation=cv2.INTER_LINEAR)`` of uint8 (..., H, W).

    Returns uint8. Horizontal pass in integers (weights sum to 2048), vertical pass as OpenCV's
    8-bit path computes it: ``((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2``.
    An exact 2x reduction on both axes is a 2x2 mean with rounding (OpenCV switches to its
    area method there).
    """
    in_height, in_width = image.shape[-2:]
    values = image.long()
    if in_height == 2 * out_height and in_width == 2 * out_width:
        blocks = values[..., 0::2, 0::2] + values[..., 0::2, 1::2] + values[..., 1::2, 0::2] + values[..., 1::2, 1::2]
        return ((blocks + 2) >> 2).to(torch.uint8)
    left, right, fx = _cv2_coefficients(in_width, out_width, along_rows=False)
    top, bottom, fy = _cv2_coefficients(in_height, out_height, along_rows=True)
    a0, a1 = _fixed_point(fx)
    b0, b1 = _fixed_point(fy)
    across = values[..., left] * a0 + values[..., right] * a1
    upper, lower = across[..., top, :] >> 4, across[..., bottom, :] >> 4
    out = ((b0[:, None] * upper) >> 16) + ((b1[:, None] * lower) >> 16)
    return ((out + 2) >> 2).clamp(0, 255).to(torch.uint8)


def cv2_resize_float(values: torch.Tensor, out_height: int, out_width: int) -> torch.Tensor:
    """``cv2.resize(values, (out_width, out_height), interpolation=cv2.INTER_LINEAR)`` of float64 (..., H, W).

    Standard OpenCV builds (the pip wheels the authors install) hand float64 resizes to Intel
    IPP, which places samples in double precision; OpenCV's own path would round positions to
    float32 (up to 6.5e-5 of alpha apart at 1100 px). This follows IPP: half-pixel centres,
    columns clamped to the edge pixel with weight 0 outside, rows clamped; agreement with
    OpenCV 4.8.1 within 1e-10 on the 0-255 scale (IPP sums in its own order).
    """
    in_height, in_width = values.shape[-2:]

    def taps(in_size: int, out_size: int, along_rows: bool):
        positions = (torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size) - 0.5
        index = torch.floor(positions)
        fraction = positions - index
        index = index.long()
        if not along_rows:
            outside = (index < 0) | (index >= in_size - 1)
            fraction = torch.where(outside, torch.zeros_like(fraction), fraction)
        return index.clamp(0, in_size - 1), (index + 1).clamp(0, in_size - 1), fraction

    left, right, fx = taps(in_width, out_width, along_rows=False)
    top, bottom, fy = taps(in_height, out_height, along_rows=True)
    across = values[..., left] * (1 - fx) + values[..., right] * fx
    return across[..., top, :] * (1 - fy)[:, None] + across[..., bottom, :] * fy[:, None]
