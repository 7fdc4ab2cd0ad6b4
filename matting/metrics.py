"""Matte quality as the SDMatte authors measure it: MSE, MAD, SAD, Grad and Conn.

Plain numpy + scipy (torch tensors are accepted as input); no ComfyUI.

The definitions are those of the SDMatte repository (``utils/evaluate.py``, called by
``evaluation.py``; Yaoyi Li's Python port of the Adobe Deep Image Matting MATLAB script), with
every constant and normalisation as there:

* a prediction and its ground truth are **8-bit grey levels**, 0..255 as float32 (the authors read
  both PNGs with ``cv2.imread(path, 0)``); a prediction of another size is first resized to the
  ground truth's with bilinear interpolation (``cv2.resize(..., INTER_LINEAR)``, see
  :func:`resize_bilinear`);
* the measured region is the whole image, or with a trimap its **unknown pixels, grey value 128**
  exactly (``trimap == 128``);
* ``e = (pred - gt) / 255`` per pixel (float32);
  **MSE** = sum(e²) / n × 1000, **MAD** = sum(|e|) / n × 1000, with n = H·W for the whole image or
  (number of unknown pixels + 1e-8) with a trimap; **SAD** = sum(|e|) / 1000;
* **Grad**: both mattes divided by 255 are convolved (``scipy.ndimage.convolve``, ``nearest``
  border) with a first-order Gaussian-derivative kernel of sigma 1.4: half size
  ``ceil(sigma·sqrt(-2·ln(sqrt(2π)·sigma·0.01)))`` = 4 (9×9), ``hx[i, j] = G(i-4)·G'(j-4)``
  scaled to unit L2 norm, ``hy = hxᵀ``; Grad = sum((|∇pred| - |∇gt|)²) / 1000;
* **Conn**: for thresholds t_i = 0.1·i (i = 1..10, ``np.arange(0, 1.1, 0.1)``) the largest
  4-connected component of ``(pred/255 >= t_i) & (gt/255 >= t_i)``, where, as in their code, the
  component count includes the background label 0 (``argmax(bincount(labels))``): when the
  pixels outside the thresholded region are at least as many as those of its largest component,
  the "largest component" is the outside region itself. A pixel's level l is t_{i-1} for the first i at which
  it is not in that component (1 if it always is); φ(a) = 1 - (a - l)·[a - l >= 0.15];
  Conn = sum(|φ(pred) - φ(gt)|) / 1000;
* a set's number is the mean of the per-image numbers.

The arithmetic is theirs too where it decides a value: the maps are float32 as in their numpy
code (the authors pin numpy 1.24, where a float32 map compared with a float64 threshold is
compared in float32; we cast the thresholds to float32 explicitly, so the result is the same
under numpy 2), and the resize reproduces the arithmetic of OpenCV's float32 bilinear resize as
it runs by default on x86 (through Intel IPP). Tested against values computed by running the
authors' functions (``tests/golden/metrics``).

Speed: the Gaussian-derivative filters are applied as a column pass and a row pass over bands of
rows that stay in the CPU cache (the 9×9 kernel is an outer product), and Conn's level map is read
from a table over "how many thresholds a pixel passes", labelling components only at thresholds
where the region covers more than half the image (below that the outside always wins) and only
inside the region's bounding box. A 2048² image's five metrics take a fraction of a second
(``bench/bench_metrics.py``).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.ndimage as ndi

from .errors import PromptError

METRIC_NAMES = ("MSE", "MAD", "SAD", "Grad", "Conn")  # the order of the authors' lines
UNKNOWN = 128  # trimap grey value of the unknown region (``trimap == 128`` in their code)
GRAD_SIGMA = 1.4
GRAD_EPSILON = 1e-2  # kernel half size: where the Gaussian falls to this fraction
CONN_STEP = 0.1
CONN_THETA = 0.15  # φ counts a pixel as disconnected above this distance from its level

_BAND_ROWS = 64  # rows per cache-resident band of the gradient filter


class MetricsError(PromptError):
    """A prediction, ground truth or trimap that cannot be measured (the message says why and what to do)."""


# ----------------------------------------------------------------------------- inputs


def grey_levels(alpha, what: str = "alpha", rounding: str = "round") -> np.ndarray:
    """A matte in [0, 1] as the 8-bit grey levels a PNG of it holds, float32 0..255.

    ``rounding="round"`` gives the nearest level (a matte read from an 8-bit file comes back
    exactly); ``"floor"`` truncates as the authors' ``inference.py`` does when it writes
    ``(pred * 255).astype(np.uint8)``.
    """
    a = _as_array(alpha, what)
    if a.size and (float(a.min()) < -1e-6 or float(a.max()) > 1 + 1e-6):
        raise MetricsError(
            f"the {what} has values from {float(a.min()):.4g} to {float(a.max()):.4g}; a matte must lie in "
            "[0, 1] (1 = foreground)"
        )
    scaled = np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0
    if rounding == "round":
        levels = np.round(scaled)
    elif rounding == "floor":
        levels = np.floor(scaled.astype(np.float32))  # as numpy casts float32 to uint8
    else:
        raise MetricsError(f"rounding {rounding!r} must be 'round' or 'floor'")
    return levels.astype(np.float32)


def _as_array(value, what: str) -> np.ndarray:
    """(H, W) numpy array from a numpy array or torch tensor of shape (H, W), (1, H, W) or (H, W, 1)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything that is not array-like
            raise MetricsError(f"the {what} must be an image-sized array, got {type(value).__name__}") from None
    a = value
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise MetricsError(
            f"the {what} has shape {tuple(value.shape)}; give one grey image of shape height×width "
            "(convert colour images to grey first)"
        )
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise MetricsError(f"the {what} is empty (size {a.shape[0]}×{a.shape[1]})")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if not np.issubdtype(a.dtype, np.number):
        raise MetricsError(f"the {what} has values of type {a.dtype}; give numbers")
    return a


def _levels(value, what: str) -> np.ndarray:
    """(H, W) float32 grey levels 0..255, checked."""
    a = _as_array(value, what)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise MetricsError(f"the {what} contains NaN or infinite values; fix the node or file that made it")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:
        raise MetricsError(
            f"the {what} has values from {lo:.4g} to {hi:.4g}; the metrics read 8-bit grey levels 0..255 "
            "(multiply a [0, 1] matte by 255, e.g. with grey_levels())"
        )
    return np.ascontiguousarray(a)


def unknown_region(trimap, size) -> np.ndarray:
    """Boolean (H, W) map of a trimap's unknown pixels (grey value exactly 128), checked against ``size``."""
    t = _levels(trimap, "trimap")
    h, w = size
    if t.shape != (h, w):
        raise MetricsError(
            f"the trimap is {t.shape[1]}×{t.shape[0]} but the ground truth is {w}×{h} (width×height); "
            "give the trimap of this ground truth"
        )
    region = t == UNKNOWN
    if not region.any():
        values = np.unique(t)
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise MetricsError(
            f"the trimap has no unknown pixels: none has the grey value {UNKNOWN} (its values: {shown}); "
            "trimaps are 0 (background), 128 (unknown), 255 (foreground): fix its grey level, or measure "
            "without a trimap (the whole image)"
        )
    return region


# ----------------------------------------------------------------------------- resize


def _source_positions(n_in: int, n_out: int):
    """Left source index, right source index and float32 weight of the right one, per output pixel.

    Centres are aligned as OpenCV does (``(d + 0.5) * in / out - 0.5``, the scale taken as
    ``1 / (out / in)``); positions before the first or after the last source pixel take that pixel.
    The fraction is taken in double precision and then rounded to float32, as IPP's resize does
    (OpenCV's own C++ path rounds the position first, which differs by up to 1e-3 of a grey level).
    """
    scale = 1.0 / (n_out / n_in)
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    left = np.floor(pos)
    frac = (pos - left).astype(np.float32)
    left = left.astype(np.intp)
    before = left < 0
    frac[before] = 0.0
    left[before] = 0
    after = left >= n_in - 1
    frac[after] = 0.0
    left[after] = n_in - 1
    right = np.minimum(left + 1, n_in - 1)
    return left, right, frac


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """float32 ``a + t·(b - a)`` with the difference rounded and one rounding after the multiply-add
    (a fused multiply-add, as IPP's vector code computes it)."""
    diff = (b - a).astype(np.float32)
    return (a.astype(np.float64) + t.astype(np.float64) * diff).astype(np.float32)


def resize_bilinear(image, size) -> np.ndarray:
    """Bilinear resize of (h, w) grey levels to ``size`` (H, W), float32, as ``cv2.resize(img, (W, H))``.

    Rows first, then columns, each output pixel a linear interpolation of its two nearest source
    pixels (no antialiasing when shrinking, like OpenCV's INTER_LINEAR). Against OpenCV 4.5's
    default (IPP) float32 path on x86 the result is bit-identical on more than 99 % of pixels and
    within one float32 rounding step (1.5e-5 of a grey level) on the rest: IPP's tail columns use
    other instructions, and which ones depends on the CPU it runs on.
    """
    img = _as_array(image, "image").astype(np.float32)
    h_out, w_out = (int(v) for v in size)
    if h_out < 1 or w_out < 1:
        raise MetricsError(f"cannot resize to {w_out}×{h_out} (width×height)")
    if img.shape == (h_out, w_out):
        return img.copy()
    x0, x1, fx = _source_positions(img.shape[1], w_out)
    y0, y1, fy = _source_positions(img.shape[0], h_out)
    rows = _lerp(img[:, x0], img[:, x1], fx[None, :])
    return _lerp(rows[y0], rows[y1], fy[:, None])


# ----------------------------------------------------------------------------- Grad


def gaussian_derivative_kernels(sigma: float = GRAD_SIGMA):
    """(g, d): the 1-D Gaussian and Gaussian-derivative factors of the authors' 9×9 kernel.

    ``hx = outer(g, d)`` (their ``hx[i, j] = gauss(i - h)·dgauss(j - h)`` divided by its L2 norm,
    which is ``|g|·|d|``), ``hy = hxᵀ``. float64.
    """
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * GRAD_EPSILON))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(u ** 2) / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    d = -u * g / sigma ** 2
    return g / np.sqrt(np.sum(g * g)), d / np.sqrt(np.sum(d * d))


def gradient_magnitude(image01: np.ndarray, sigma: float = GRAD_SIGMA) -> np.ndarray:
    """|∇image| (float32, as their float32 output) with the authors' Gaussian-derivative filters.

    ``image01`` is float32 (their ``pred / 255.0``). Equal to ``sqrt(convolve(im, hx)² +
    convolve(im, hy)²)`` with ``scipy.ndimage.convolve(..., mode='nearest')``: the 2-D kernels are
    outer products, so each is a column pass and a row pass, computed in float64 (scipy accumulates
    in double) on bands of rows that stay in the CPU cache. The column pass pairs the taps (the
    Gaussian is symmetric, its derivative antisymmetric) on the band with its 4-row halo taken from
    the image clamped at its edges (the ``nearest`` border); the row pass is scipy's 1-D
    convolution along the rows. Each gradient is rounded to float32 as scipy stores it.
    """
    g, d = gaussian_derivative_kernels(sigma)
    half = len(g) // 2
    h, w = image01.shape
    out = np.empty((h, w), dtype=np.float32)
    for r0 in range(0, h, _BAND_ROWS):
        r1 = min(h, r0 + _BAND_ROWS)
        n = r1 - r0
        band = image01[np.clip(np.arange(r0 - half, r1 + half), 0, h - 1)].astype(np.float64)
        # columns (axis 0): Gaussian (for gx) and derivative (for gy); convolution puts the
        # weight d[half + j] on the pixel j rows above
        smooth = band[half:half + n] * g[half]
        deriv = np.zeros((n, w))
        for j in range(1, half + 1):
            above, below = band[half - j:half - j + n], band[half + j:half + j + n]
            smooth += g[half + j] * (above + below)
            deriv += d[half + j] * (above - below)
        # rows (axis 1): derivative for gx, Gaussian for gy
        gx = ndi.convolve1d(smooth, d, axis=1, mode="nearest").astype(np.float32)
        gy = ndi.convolve1d(deriv, g, axis=1, mode="nearest").astype(np.float32)
        np.sqrt(gx * gx + gy * gy, out=out[r0:r1])
    return out


def _grad(pred01: np.ndarray, gt01: np.ndarray, region: np.ndarray | None) -> float:
    err = gradient_magnitude(pred01) - gradient_magnitude(gt01)
    err *= err
    total = np.sum(err[region]) if region is not None else np.sum(err)
    return float(total) / 1000.0


# ----------------------------------------------------------------------------- Conn


def _largest_label(mask: np.ndarray):
    """(labels, label of the first largest component, its size) of a non-empty boolean mask."""
    labels = np.empty(mask.shape, dtype=np.intp)  # bincount counts intp without a converted copy
    count = ndi.label(mask, output=labels)  # scipy's default structure: 4-connectivity, raster-order labels
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    best = int(np.argmax(sizes))
    return labels, best, int(sizes[best])


def connectivity_levels(pred01: np.ndarray, gt01: np.ndarray, step: float = CONN_STEP) -> np.ndarray:
    """The authors' level map l (float32): t_{i-1} for the first threshold t_i at which a pixel is
    not in that threshold's "largest component", 1 if it never leaves.

    Their ``getLargestCC`` labels ``(pred >= t_i) & (gt >= t_i)`` with 4-connectivity and keeps
    ``labels == argmax(bincount(labels))``: the background (label 0) is counted among the
    components and the first largest label wins, so when the pixels outside the region are at least
    as many as those of its largest component, the "largest component" is the outside. Labels are
    numbered in raster order (scipy's as skimage's), so equal components resolve the same way.

    Computed without walking the whole image ten times. With m_i = min(pred, gt) >= t_i (nested
    regions) and k the number of thresholds a pixel passes, a pixel leaves at threshold i when
    i <= k and the component is the outside (the background case), when i <= k and it is not in
    the component (the component case), or when i > k and the component case holds. Everything
    but the middle rule depends on k alone (a table over k = 0..10); the middle rule needs the
    labels, which are only computed where the region covers more than half of the image (below
    that the outside wins without counting) and only inside the region's bounding box.
    """
    steps = np.arange(0, 1 + step, step)  # the authors' float64 thresholds ...
    thresholds = steps.astype(np.float32)  # ... compared with float32 maps in float32 (numpy 1.24)
    n_steps = len(steps) - 1
    never = n_steps + 1
    low = np.minimum(pred01, gt01)
    k = np.zeros(low.shape, dtype=np.uint8)
    for i in range(1, n_steps + 1):
        k += low >= thresholds[i]
    counts = np.bincount(k.ravel(), minlength=n_steps + 1)
    inside = np.cumsum(counts[::-1])[::-1]  # inside[i] = pixels with k >= i = |m_i|
    total = low.size
    component = {}  # threshold index -> (row slice, col slice, labels, best label)
    row_k = col_k = None
    for i in range(1, n_steps + 1):
        n_in = int(inside[i])
        if 2 * n_in <= total:
            continue  # the outside wins
        if row_k is None:
            row_k, col_k = k.max(axis=1), k.max(axis=0)
        rows, cols = np.flatnonzero(row_k >= i), np.flatnonzero(col_k >= i)
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        labels, best, size = _largest_label(k[box] >= i)
        if total - n_in < size:
            component[i] = (box, labels, best)
    # first failing threshold from k alone: the first background case at or below k,
    # or the first component case above k
    table = np.full(n_steps + 1, never, dtype=np.uint8)
    for kk in range(n_steps + 1):
        below = [i for i in range(1, kk + 1) if i not in component]
        above = [i for i in range(kk + 1, n_steps + 1) if i in component]
        table[kk] = min(below[:1] + above[:1] + [never])
    first = table[k]
    for i in sorted(component):  # inside the component case: pixels of m_i outside the component
        box, labels, best = component[i]
        sub = first[box]
        leave = labels != best
        leave &= labels != 0  # in m_i (label 0 is outside it)
        leave &= sub > i
        sub[leave] = i
    level_of = np.empty(never + 1, dtype=np.float32)
    level_of[0] = 1.0  # unused
    level_of[1:never] = steps[:n_steps].astype(np.float32)
    level_of[never] = 1.0
    return level_of[first]


def _conn(pred01: np.ndarray, gt01: np.ndarray, region: np.ndarray | None, step: float = CONN_STEP) -> float:
    level = connectivity_levels(pred01, gt01, step)
    theta = np.float32(CONN_THETA)
    pd = pred01 - level  # float32, as theirs
    td = gt01 - level
    # |φ(pred) - φ(gt)| with φ = 1 - d·[d >= θ]: their float32 × int64 product makes it float64,
    # where 1 - d is exact, so the difference is |d_gt' - d_pred'| of the float32 values exactly
    np.multiply(pd, pd >= theta, out=pd)
    np.multiply(td, td >= theta, out=td)
    diff = np.abs(td.astype(np.float64) - pd.astype(np.float64))
    total = np.sum(diff[region]) if region is not None else np.sum(diff)
    return float(total) / 1000.0


# ----------------------------------------------------------------------------- all five


def matte_metrics(pred, gt, trimap=None) -> dict:
    """MSE, MAD, SAD, Grad and Conn of one prediction against its ground truth, as the authors report them.

    pred, gt: grey levels 0..255 (uint8 or float, numpy or torch, (H, W)); a prediction of another
    size is resized to the ground truth's (:func:`resize_bilinear`).
    trimap: optional grey levels (the ground truth's size); only its unknown pixels (value 128)
    are measured (their ``compute_sad_loss`` then returns a pair, SAD and the unknown area / 1000:
    SAD is the first).
    Returns ``{"MSE", "MAD", "SAD", "Grad", "Conn"}`` as floats (MSE and MAD × 1000, SAD, Grad
    and Conn / 1000).
    """
    p = _levels(pred, "prediction")
    t = _levels(gt, "ground truth")
    if p.shape != t.shape:
        p = resize_bilinear(p, t.shape)
    region = unknown_region(trimap, t.shape) if trimap is not None else None
    return _metrics(p, t, region)


def _metrics(p: np.ndarray, t: np.ndarray, region: np.ndarray | None) -> dict:
    scale = np.float32(255.0)
    err = (p - t) / scale  # float32, as (pred - target) / 255.0
    abs_err = np.abs(err)
    if region is None:
        n = float(err.size)
        sq_sum = float(np.sum(err * err))
        abs_sum = float(np.sum(abs_err))
    else:
        n = float(np.count_nonzero(region)) + 1e-8
        sq_sum = float(np.sum((err * err) * region))
        abs_sum = float(np.sum(abs_err * region))
    p01 = p / scale
    t01 = t / scale
    return {
        "MSE": sq_sum / n * 1000.0,
        "MAD": abs_sum / n * 1000.0,
        "SAD": abs_sum / 1000.0,
        "Grad": _grad(p01, t01, region),
        "Conn": _conn(p01, t01, region),
    }


def error_map(pred, gt) -> np.ndarray:
    """|pred - gt| / 255 per pixel (float32, the ground truth's size; pred resized like the metrics do)."""
    p = _levels(pred, "prediction")
    t = _levels(gt, "ground truth")
    if p.shape != t.shape:
        p = resize_bilinear(p, t.shape)
    return np.abs(p - t) / np.float32(255.0)


def _columns(rows) -> tuple:
    """The authors' five metrics, and dtSSD when every row has it (a clip's frames)."""
    return METRIC_NAMES + (("dtSSD",) if rows and all("dtSSD" in r for r in rows) else ())


def mean_metrics(rows: Iterable[Mapping[str, float]]) -> dict:
    """The set's numbers: the mean of each metric over the per-image numbers (dtSSD too when every
    row has it: the clip's dtSSD, as Robust Video Matting averages it, its first frame's 0 included)."""
    rows = list(rows)
    if not rows:
        raise MetricsError("no images were measured; nothing to average")
    return {k: float(np.mean([float(r[k]) for r in rows])) for k in _columns(rows)}


DTSSD_SCALE = 100.0


def dtssd(pred_frames, true_frames) -> list:
    """dtSSD of each frame of a clip, as Robust Video Matting's evaluation computes it
    (``evaluation/evaluate_lr.py``, ``MetricDTSSD``; after Erofeev et al., "Perceptually motivated
    benchmark for video matting", 2015): frame 0 scores 0, and frame t

        100 · sqrt( sum( ((p_t − p_{t−1}) − (g_t − g_{t−1}))² ) / number of pixels )

    with p and g the prediction and the truth as 8-bit grey levels / 255 in float32 (RVM reads both
    PNGs with ``cv2.imread(..., IMREAD_GRAYSCALE) / 255``). The clip's dtSSD is the mean of these
    numbers over all its frames, frame 0's 0 included (RVM's ``AVERAGE`` over its frames).
    ``pred_frames`` / ``true_frames``: sequences of grey levels 0..255 (:func:`grey_levels`), or
    arrays (N, H, W) of them; every frame the same size.
    """
    scale = np.float32(255.0)
    out, previous = [], None
    for i, (p, g) in enumerate(zip(pred_frames, true_frames)):
        p = _levels(p, f"prediction of frame {i}") / scale
        g = _levels(g, f"ground truth of frame {i}") / scale
        if p.shape != g.shape:
            raise MetricsError(f"frame {i}: the prediction is {p.shape[1]}×{p.shape[0]} and the ground truth "
                               f"{g.shape[1]}×{g.shape[0]}; resize the prediction first (resize_bilinear)")
        if previous is None:
            out.append(0.0)
        else:
            if p.shape != previous[0].shape:
                raise MetricsError(f"frame {i} is {p.shape[1]}×{p.shape[0]} but frame {i - 1} is "
                                   f"{previous[0].shape[1]}×{previous[0].shape[0]}; a clip's frames share one size")
            d = (p - previous[0]) - (g - previous[1])  # float32, as RVM's numpy arithmetic
            out.append(float(np.sqrt(np.sum((d * d).astype(np.float64)) / d.size)) * DTSSD_SCALE)
        previous = (p, g)
    return out


def format_line(name: str, values: Mapping[str, float], digits: int = 2) -> str:
    """One line as the authors' ``evaluation.py`` writes it: ``name: MSE: 1.23  MAD: ... Conn: ...``."""
    v = {k: f"{float(values[k]):.{digits}f}" for k in METRIC_NAMES}
    return f"{name}: MSE: {v['MSE']}  MAD: {v['MAD']}  SAD: {v['SAD']} Grad: {v['Grad']} Conn: {v['Conn']}"


def format_table(names: Sequence[str], rows: Sequence[Mapping[str, float]], digits: int = 2) -> str:
    """A fixed-width table: one line per image and the mean, metric columns in the authors' order
    (and dtSSD last when every row has it)."""
    if len(names) != len(rows):
        raise MetricsError(f"{len(names)} names for {len(rows)} rows of metrics")
    mean = mean_metrics(rows)
    columns = _columns(list(rows))
    width = max([len("image"), len("mean")] + [len(str(n)) for n in names])
    cells = [[f"{float(r[k]):.{digits}f}" for k in columns] for r in list(rows) + [mean]]
    col = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(columns)]
    head = "image".ljust(width) + "  " + "  ".join(k.rjust(col[j]) for j, k in enumerate(columns))
    lines = [head]
    for name, c in zip(list(names) + ["mean"], cells):
        lines.append(str(name).ljust(width) + "  " + "  ".join(c[j].rjust(col[j]) for j in range(len(col))))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- batches of masks


_HEAT_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_HEAT_COLOURS = np.array([
    [0.0, 0.0, 0.0],  # no error: black
    [0.33, 0.06, 0.55],  # purple
    [0.85, 0.17, 0.20],  # red
    [0.99, 0.62, 0.08],  # orange
    [0.99, 1.00, 0.64],  # pale yellow: |error| = 1
])
OUTSIDE_DIM = 0.3  # brightness of the error map outside the trimap's unknown region (not measured)


def heat_map(error: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) float32 colours of a per-pixel |error| in [0, 1]: black (0) through purple, red and
    orange to pale yellow (1), on a square-root scale so that small errors show; pixels outside
    ``region`` (not measured) are dimmed."""
    e = np.sqrt(np.clip(np.asarray(error, dtype=np.float64), 0.0, 1.0))
    rgb = np.stack([np.interp(e, _HEAT_STOPS, _HEAT_COLOURS[:, c]) for c in range(3)], axis=-1)
    if region is not None:
        rgb = np.where(region[..., None], rgb, rgb * OUTSIDE_DIM)
    return rgb.astype(np.float32)


def _as_batch(masks, what: str) -> np.ndarray:
    if hasattr(masks, "detach") and hasattr(masks, "cpu"):
        masks = masks.detach().cpu()
        masks = (masks.float() if masks.is_floating_point() else masks).numpy()
    a = np.asarray(masks)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif not np.issubdtype(a.dtype, np.floating):  # integer masks: 0/1, or 0..255
        a = a.astype(np.float32) / (255.0 if a.size and a.max() > 1 else 1.0)
    if a.ndim != 3 or a.shape[0] < 1:
        raise MetricsError(f"the {what} has shape {tuple(np.shape(masks))}; connect a MASK (batch, height, width)")
    return a


def measure_masks(alpha, ground_truth, trimap=None):
    """Metrics of a batch of mattes in [0, 1] (ComfyUI MASKs, 1 = foreground) against ground truths.

    Both are taken as the 8-bit grey levels a PNG of them holds (:func:`grey_levels`, rounded);
    an alpha of another size is resized to its ground truth. N alphas pair with N ground truths;
    one of either pairs with every one of the other. ``trimap``: one for all pairs or one per
    pair, 0 / 0.5 / 1 (0.5 → grey level 128, unknown: only those pixels are measured).
    N > 1 alphas paired with N ground truths are taken as a clip's frames in order: each row also has
    its frame's ``dtSSD`` (:func:`dtssd`, over the whole frame, the trimap aside).
    Returns (rows: list of metric dicts, error maps (N, H, W, 3) float32 colours, see :func:`heat_map`).
    """
    a = _as_batch(alpha, "alpha")
    g = _as_batch(ground_truth, "ground truth")
    na, ng = a.shape[0], g.shape[0]
    if na != ng and 1 not in (na, ng):
        raise MetricsError(
            f"batch mismatch: {na} alphas and {ng} ground truths; give one alpha per ground truth, or one "
            "alpha for all ground truths, or one ground truth for all alphas"
        )
    n = max(na, ng)
    t = None
    if trimap is not None:
        t = _as_batch(trimap, "trimap")
        if t.shape[0] not in (1, n):
            raise MetricsError(
                f"batch mismatch: {t.shape[0]} trimaps for {n} images measured; give one trimap for all, "
                "or one per image"
            )
    clip = na == ng and n > 1  # frames paired one to one: measured as a clip too (dtSSD)
    rows, maps, previous = [], [], None
    for i in range(n):
        where = f"image {i + 1}: " if n > 1 else ""
        try:
            pred = grey_levels(a[i if na > 1 else 0], "alpha")
            gt = grey_levels(g[i if ng > 1 else 0], "ground truth")
            region = None
            if t is not None:
                region = unknown_region(grey_levels(t[i if t.shape[0] > 1 else 0], "trimap"), gt.shape)
            p = pred if pred.shape == gt.shape else resize_bilinear(pred, gt.shape)
            rows.append(_metrics(p, gt, region))
            if clip:
                if previous is not None and previous[1].shape != gt.shape:
                    raise MetricsError(f"the ground truth is {gt.shape[1]}×{gt.shape[0]} here but "
                                       f"{previous[1].shape[1]}×{previous[1].shape[0]} on the frame before; "
                                       "a clip's frames share one size")
                rows[-1]["dtSSD"] = dtssd([previous[0], p], [previous[1], gt])[1] if previous else 0.0
                previous = (p, gt)
            maps.append(heat_map(np.abs(p - gt) / np.float32(255.0), region))
        except MetricsError as e:
            raise MetricsError(f"{where}{e}") from None
    return rows, np.stack(maps)


__all__ = [
    "METRIC_NAMES",
    "dtssd",
    "heat_map",
    "measure_masks",
    "MetricsError",
    "UNKNOWN",
    "error_map",
    "format_line",
    "format_table",
    "gaussian_derivative_kernels",
    "gradient_magnitude",
    "grey_levels",
    "matte_metrics",
    "mean_metrics",
    "resize_bilinear",
    "unknown_region",
]
