"""Tiled inference that gives the whole-image result, with the context computed from the network.

An output pixel of a fully convolutional generator depends on the LR pixels of its receptive field and on nothing
else, *except* where that field reaches past the image border, where the convolutions' zero padding stands in for the
missing pixels. So a tile gives the whole-image result for a cell of LR pixels when it also holds the real LR pixels
of that cell's receptive field, or reaches the image border on that side (then the tile's padding *is* the image's
padding). :func:`receptive_field` reads that reach from the model's layer graph (every path: the body, the upsampling
stages, a resized global-residual branch), and :func:`plan_axis` cuts each axis into kept cells plus that context,
clamped at the image border and never padded. Each tile's kept part is copied into a host (uint8) array, so memory is
bounded by the tile, not the image.

Equal pixels do not mean equal arithmetic: a tile is another problem size, and the kernels TensorFlow picks for the
CPU (oneDNN or Eigen, AVX2 or AVX-512 code paths) block and reorder float sums by size, so tiles and whole image differ
in the last float bits, and after rounding to uint8 by at most one grey level on rare pixels. The tests bound exactly
that (``tests/test_upscale.py``, ``tests/tolerances.py``); bit-identity is not promised, because it holds on no CPU for
every kernel choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
import math

import numpy as np

# Layers that act on each pixel independently (at inference), so they neither widen the receptive field nor change
# the resolution. Anything not listed, and not handled below, makes receptive_field() refuse the model.
_POINTWISE = ("InputLayer", "Activation", "PReLU", "LeakyReLU", "ReLU", "ELU", "Softmax", "BatchNormalization",
              "Rescaling", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dropout",
              "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity", "Concatenate")
_CONVS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
# Bytes of working memory one tile may spend on its largest activation (float32), for the default tile size.
DEFAULT_ACTIVATION_BUDGET = 512 * 2**20
MIN_DEFAULT_TILE = 32


@dataclass(frozen=True)
class ReceptiveField:
    """What tiling needs to know about a generator.

    Attributes:
        scale: the upscaling factor.
        before: LR pixels of real context a cell needs above it and to its left, ``(rows, columns)``.
        after: the same below it and to its right.
        bytes_per_pixel: float32 bytes of the largest activation per LR input pixel (sets the default tile size).
    """

    scale: int
    before: tuple
    after: tuple
    bytes_per_pixel: int

    @property
    def radius(self) -> int:
        """The largest of the four context widths, in LR pixels."""
        return max(*self.before, *self.after)

    def with_context(self, context=None) -> "ReceptiveField":
        """This field with every context width capped at ``context`` LR pixels, never widened past the exact field;
        ``None`` keeps the exact field. Less than the field trades exactness for less recomputed border: tiles then
        differ from the whole image where far pixels still matter (``benchmarks/tile_context.py`` measures how
        much)."""
        if context is None:
            return self
        if context < 0:
            raise ValueError(f"the context must be >= 0 LR pixels, got {context}")
        return dataclasses.replace(self, before=tuple(min(v, context) for v in self.before),
                                   after=tuple(min(v, context) for v in self.after))

    def to_json(self) -> dict:
        return {"scale": self.scale, "before": list(self.before), "after": list(self.after),
                "radius": self.radius, "bytes_per_pixel": self.bytes_per_pixel}

    @classmethod
    def from_json(cls, data: dict) -> "ReceptiveField":
        return cls(int(data["scale"]), tuple(int(v) for v in data["before"]), tuple(int(v) for v in data["after"]),
                   int(data["bytes_per_pixel"]))

    def default_tile(self, budget=DEFAULT_ACTIVATION_BUDGET) -> int:
        """The kept tile side (LR pixels) whose read window (tile + context) keeps the largest activation within
        ``budget`` bytes; at least ``MIN_DEFAULT_TILE``."""
        side = int(math.sqrt(budget / max(self.bytes_per_pixel, 1)))
        return max(MIN_DEFAULT_TILE, side - max(self.before) - max(self.after))


def _layer_kind(layer):
    """The class name that decides how ``layer`` maps positions (subclasses such as FastPReLU count as their
    Keras base class)."""
    for cls in type(layer).__mro__:
        if cls.__name__ in _POINTWISE + _CONVS + ("PixelShuffle", "UpSampling2D"):
            return cls.__name__
    return None


def keys_cubic(t: Fraction) -> Fraction:
    """Keys' cubic kernel with a = -0.5 (TensorFlow's bicubic resize), exactly for a ``Fraction`` (a float works too)."""
    t = abs(t)
    a = Fraction(-1, 2)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return Fraction(0)


def _resize_taps(position: int, factor: int, interpolation: str) -> list:
    """Source indices with a non-zero weight for output ``position`` of a half-pixel-centred upscaling by
    ``factor`` (``UpSampling2D``/``keras.ops.image.resize``)."""
    if interpolation == "nearest":
        return [position // factor]
    x = Fraction(2 * position + 1, 2 * factor) - Fraction(1, 2)
    base = math.floor(x)
    t = x - base
    if interpolation == "bilinear":
        weights = {base: 1 - t, base + 1: t}
    elif interpolation == "bicubic":
        weights = {base + offset: keys_cubic(t - offset) for offset in (-1, 0, 1, 2)}
    else:
        raise ValueError(f"UpSampling2D interpolation {interpolation!r} is not supported for tiling")
    return [index for index, weight in weights.items() if weight != 0]


def _backward(layer, kind, axis, lo, hi):
    """The input interval that output positions [lo, hi] of ``layer`` read along ``axis`` (0 rows, 1 columns)."""
    if kind in _POINTWISE:
        return lo, hi
    if kind in _CONVS:
        if layer.strides[axis] != 1 or layer.padding != "same":
            raise ValueError(f"layer {layer.name!r}: only stride-1 'same' convolutions can be tiled "
                             f"(strides {layer.strides}, padding {layer.padding!r})")
        span = layer.dilation_rate[axis] * (layer.kernel_size[axis] - 1)
        before = span // 2  # TensorFlow's 'same' padding puts the odd extra pixel after.
        return lo - before, hi + (span - before)
    if kind == "PixelShuffle":
        return lo // layer.block_size, hi // layer.block_size
    if kind == "UpSampling2D":
        taps = [tap for position in range(lo, hi + 1)
                for tap in _resize_taps(position, layer.size[axis], layer.interpolation)]
        return min(taps), max(taps)
    raise AssertionError(kind)


def _factor(layer, kind, axis):
    if kind == "PixelShuffle":
        return layer.block_size
    if kind == "UpSampling2D":
        return layer.size[axis]
    return 1


def receptive_field(model) -> ReceptiveField:
    """The scale, context and activation size of a fully convolutional Keras generator (functional model).

    The context is computed per output phase (the ``scale`` sub-pixel positions of one LR cell) by walking the layer
    graph backwards from the output, taking the union over every path, so it is exact for the architecture, not a
    bound: one LR pixel less and some output pixel reads padding instead of image.

    Raises:
        ValueError: naming the layer, for a model this cannot analyse (strided or 'valid' convolutions, transposed
            convolutions, nested models, non-pointwise layers it does not know); run such a model whole (--tile 0).
    """
    nodes_by_depth = getattr(model, "_nodes_by_depth", None)
    if not nodes_by_depth or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r}: tiling needs a functional model with one input and one output")
    # Forward: the resolution factor of every tensor, and the largest activation.
    factors = {id(model.inputs[0]): (1, 1)}
    largest = 3 * 4
    ordered = [node for depth in sorted(nodes_by_depth, reverse=True) for node in nodes_by_depth[depth]
               if node.operation is not None and not node.is_input]
    kinds = {}
    for node in ordered:
        layer = node.operation
        kind = _layer_kind(layer)
        if kind is None:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not known to act per pixel or as a "
                             "stride-1 convolution; its receptive field cannot be computed (use --tile 0)")
        if kind == "Concatenate" and layer.axis not in (-1, 3):
            raise ValueError(f"layer {layer.name!r}: only channel concatenation can be tiled")
        kinds[id(node)] = kind
        inputs = [factors[id(tensor)] for tensor in node.input_tensors]
        if len(set(inputs)) != 1:
            raise ValueError(f"layer {layer.name!r} merges tensors of different resolutions")
        factor = tuple(inputs[0][axis] * _factor(layer, kind, axis) for axis in (0, 1))
        for tensor in node.outputs:
            factors[id(tensor)] = factor
            channels = tensor.shape[-1] or 1
            largest = max(largest, channels * factor[0] * factor[1] * 4)
    scale = factors[id(model.outputs[0])]
    if scale[0] != scale[1]:
        raise ValueError(f"model {model.name!r} scales rows and columns differently: {scale}")
    scale = scale[0]

    before, after = [], []
    cell = 10 * scale  # Any interior LR cell: there is no border in this computation.
    for axis in (0, 1):
        lows, highs = [], []
        for phase in range(scale):
            position = cell * scale + phase
            wanted = {id(model.outputs[0]): (position, position)}
            for node in reversed(ordered):
                reads = [wanted[id(tensor)] for tensor in node.outputs if id(tensor) in wanted]
                if not reads:
                    continue
                lo, hi = min(r[0] for r in reads), max(r[1] for r in reads)
                lo, hi = _backward(node.operation, kinds[id(node)], axis, lo, hi)
                for tensor in node.input_tensors:
                    old = wanted.get(id(tensor), (lo, hi))
                    wanted[id(tensor)] = (min(old[0], lo), max(old[1], hi))
            lo, hi = wanted[id(model.inputs[0])]
            lows.append(lo)
            highs.append(hi)
        before.append(max(0, cell - min(lows)))
        after.append(max(0, max(highs) - cell))
    return ReceptiveField(scale, tuple(before), tuple(after), largest)


def plan_axis(size: int, tile: int, before: int, after: int) -> list:
    """Tiles along one axis of ``size`` LR pixels: ``(read_start, read_stop, keep_start, keep_stop)`` for each run of
    ``tile`` kept pixels, reading ``before``/``after`` pixels of context, clamped at ``0`` and ``size``.
    ``tile <= 0`` or ``tile >= size`` gives one tile, the whole axis."""
    if tile <= 0 or tile >= size:
        return [(0, size, 0, size)]
    return [(max(0, start - before), min(size, start + tile + after), start, min(size, start + tile))
            for start in range(0, size, tile)]


def plan_tiles(height: int, width: int, tile: int, field: ReceptiveField, context=None) -> list:
    """Row-major list of ``((row read/keep), (column read/keep))`` tiles for an LR image; ``context`` caps the
    context read on each side (:meth:`ReceptiveField.with_context`; None: the exact field)."""
    field = field.with_context(context)
    rows = plan_axis(height, tile, field.before[0], field.after[0])
    columns = plan_axis(width, tile, field.before[1], field.after[1])
    return [(row, column) for row in rows for column in columns]


def upscale_tiled(run, image, field: ReceptiveField, tile: int, progress=None, context=None) -> np.ndarray:
    """Runs ``run`` (a ``(1, h, w, 3)`` batch -> ``(1, h*s, w*s, 3)`` function, e.g. LR uint8 -> SR uint8) over an
    ``(H, W, 3)`` image tile by tile and assembles the kept parts on the host.

    Args:
        run: the per-tile function; its output dtype is the result's.
        image: the LR image, a numpy array.
        field: the generator's :class:`ReceptiveField` (may be None for ``tile=0``).
        tile: kept tile side in LR pixels; 0 runs the whole image at once.
        progress: optional tqdm-like object, ``update(1)`` per tile (its ``total`` is set here).
        context: LR pixels of context per side, capped at the exact field (None: the exact field).

    Returns:
        ``(H*s, W*s, 3)`` numpy array, equal to ``run`` on the whole image (within float rounding with the exact
        field; with a smaller ``context``, within what far pixels contribute).
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    if tile > 0 and field is None:
        raise ValueError("tiling needs the model's receptive field")
    tiles = (plan_tiles(height, width, tile, field, context) if tile > 0
             else [((0, height, 0, height), (0, width, 0, width))])
    if progress is not None:
        progress.reset(total=len(tiles))
    result = None
    for (r0, r1, k0, k1), (c0, c1, j0, j1) in tiles:
        out = np.asarray(run(image[np.newaxis, r0:r1, c0:c1]))[0]
        s = field.scale if field is not None else out.shape[0] // (r1 - r0)
        if out.shape[:2] != ((r1 - r0) * s, (c1 - c0) * s):
            raise ValueError(f"the model returned {out.shape[0]}x{out.shape[1]} for a {r1 - r0}x{c1 - c0} tile; "
                             f"expected x{s}")
        if result is None:
            result = np.empty((height * s, width * s) + out.shape[2:], dtype=out.dtype)
        result[k0 * s:k1 * s, j0 * s:j1 * s] = out[(k0 - r0) * s:(k1 - r0) * s, (j0 - c0) * s:(j1 - c0) * s]
        if progress is not None:
            progress.update(1)
    return result
