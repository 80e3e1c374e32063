"""Buffers and strided views: how reshape, transpose, slice and concat become DMA strides.

A :class:`Buffer` is one tensor's storage in the compiler's default layout (rows padded to 64
bytes, planes to 64 bytes, command-stream.md §4.1). A :class:`View` addresses part of a buffer
with its own offset and strides; the width axis is always contiguous, so only views that keep
``W`` innermost exist. Every view op either returns a view or ``None`` (then the compiler copies
or hands the op to the host).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from anesim.compiler.graph.constants import ConstantData
from anesim.program.model import DTYPE_BYTES, align_up

BufferRole = str  # "input", "output", "intermediate", "constant"


@dataclass
class Buffer:
    """Storage for one tensor in a segment, in the packed NCHW layout."""

    id: int
    name: str
    role: BufferRole
    n: int
    c: int
    h: int
    w: int
    dtype: str = "fp16"
    data: ConstantData | None = None  # constants read by the tile DMA (not kernels)
    logical_shape: tuple[int, ...] = ()
    on_chip: bool = False  # a row tile's intermediate: kept in the pool when there is room

    # The layout is read for every view of every task the compiler makes: it is computed once,
    # when the buffer is made (its dims and type never change after that).
    elem_bytes: int = field(init=False, repr=False, compare=False)  # bytes per element
    row_stride: int = field(init=False, repr=False, compare=False)  # bytes between rows (64-byte aligned)
    plane_stride: int = field(init=False, repr=False, compare=False)  # bytes between channels
    batch_stride: int = field(init=False, repr=False, compare=False)  # bytes between images
    nbytes: int = field(init=False, repr=False, compare=False)  # bytes occupied, padding included
    _whole: View = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.elem_bytes = elem = DTYPE_BYTES[self.dtype]
        self.row_stride = row = align_up(self.w * elem)
        self.plane_stride = plane = align_up(row * self.h)
        self.batch_stride = batch = plane * self.c
        self.nbytes = batch * self.n
        self._whole = View(self.id, 0, self.n, self.c, self.h, self.w, batch, plane, row, elem)

    def view(self) -> View:
        """The whole buffer as a view."""
        return self._whole


class View(NamedTuple):
    """Part of a buffer: offset, NCHW extents and byte strides (width contiguous).

    A named tuple rather than a frozen dataclass: a large model makes hundreds of thousands of
    views and compares them while planning memory, and a tuple is made, compared and hashed in
    C, several times faster. Immutable and compared by value either way.
    """

    buffer: int
    offset: int
    n: int
    c: int
    h: int
    w: int
    sn: int
    sc: int
    sh: int
    elem: int = 2

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """(n, c, h, w)."""
        return self[2:6]  # type: ignore[return-value]  # the fields n, c, h, w

    @property
    def elements(self) -> int:
        """Number of elements."""
        return self.n * self.c * self.h * self.w

    def image(self, index: int) -> View:
        """Image ``index`` of the batch, as a view with n = 1."""
        if index == 0 and self.n == 1:
            return self
        return View(self.buffer, self.offset + index * self.sn, 1, self.c, self.h, self.w,
                    self.sn, self.sc, self.sh, self.elem)

    def images_as_channels(self, start: int, count: int) -> View:
        """Images [start, start + count) as one image of ``count * c`` channels: the same bytes,
        where each image follows the one before at the plane stride (see :func:`batch_folds`)."""
        return View(self.buffer, self.offset + start * self.sn, 1, count * self.c, self.h, self.w,
                    count * self.sn, self.sc, self.sh, self.elem)

    def plane(self, n: int, c: int) -> View:
        """One (n, c) plane: a single-channel view of h rows."""
        return View(self.buffer, self.offset + n * self.sn + c * self.sc, 1, 1, self.h, self.w,
                    self.sn, self.sc, self.sh, self.elem)

    def rows_as_channels(self) -> View:
        """A single plane whose rows become channels: (1, 1, H, W) -> (1, H, 1, W)."""
        assert self.n == 1 and self.c == 1
        return View(self.buffer, self.offset, 1, self.h, 1, self.w, self.sn, self.sh, self.sh, self.elem)

    def channels(self, start: int, count: int) -> View:
        """Channels [start, start + count)."""
        return View(self.buffer, self.offset + start * self.sc, self.n, count, self.h, self.w,
                    self.sn, self.sc, self.sh, self.elem)

    def is_packed_like(self, other: View) -> bool:
        """True when both views address the same bytes the same way."""
        return self == other


def batch_folds(views: list[View], max_channels: int, max_bytes: int) -> list[list[View]] | None:
    """A batch of per-plane work (an element-wise op, a pooling) as a few images of many channels.

    Every view must hold the same batch and channels (a plane of one maps to the same plane of
    the others; their heights and widths are the op's business), and each image must follow the
    one before at the plane stride (a whole tensor in the packed layout; not a concat's part or a
    channel slice), so that images [i, i + k) are the channels of one image, byte for byte. Returns
    per group of at most ``max_channels`` channels, and of at most ``max_bytes`` per view (the
    working set a task's operand may hold on chip: a group never spills where its images alone
    would not), each view's images as one image, or None when the batch is one or the views do
    not allow it (then the work goes image by image).
    """
    first = views[0]
    n = first.n
    if n == 1 or any(v.n != n or v.c != first.c or v.sn != v.c * v.sc for v in views):
        return None
    per = max(1, min(max_channels // first.c, max_bytes // max(max(v.sn for v in views), 1)))
    if per == 1:
        return None
    return [[v.images_as_channels(i, min(per, n - i)) for v in views] for i in range(0, n, per)]


def _dims4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded[0], padded[1], padded[2], padded[3]


def reshape_view(v: View, new_shape: tuple[int, ...]) -> View | None:
    """The same bytes under a new logical shape, if strides can express it (W stays contiguous)."""
    geometry = _reshaped(v.n, v.c, v.h, v.w, v.sn, v.sc, v.sh, v.elem, tuple(new_shape))
    if geometry is None:
        return None
    return View(v.buffer, v.offset, *geometry, v.elem)


# The answer depends on the extents and strides only, and a model reshapes the same few
# geometries over and over (every head, every tile): each is worked out once.
@lru_cache(maxsize=4096)
def _reshaped(n: int, c: int, h: int, w: int, sn: int, sc: int, sh: int, elem: int,
              new_shape: tuple[int, ...]) -> tuple[int, int, int, int, int, int, int] | None:
    """(n, c, h, w, sn, sc, sh) of the reshaped view, or None when strides cannot say it."""
    new = _dims4(new_shape)
    old_dims = [n, c, h, w]
    old_strides = [sn, sc, sh, elem]
    # Drop size-1 axes, then match runs of old axes to runs of new axes (numpy's no-copy rule).
    od = [(d, s) for d, s in zip(old_dims, old_strides) if d != 1]
    nd_dims = list(new)
    new_strides = [0, 0, 0, 0]
    oi = 0
    ni = 0
    nz_new = [i for i, d in enumerate(nd_dims) if d != 1]
    while oi < len(od) and ni < len(nz_new):
        # grow groups until the products match
        o_end, n_end = oi + 1, ni + 1
        o_prod = od[oi][0]
        n_prod = nd_dims[nz_new[ni]]
        while o_prod != n_prod:
            if o_prod < n_prod:
                if o_end >= len(od):
                    return None
                o_prod *= od[o_end][0]
                o_end += 1
            else:
                if n_end >= len(nz_new):
                    return None
                n_prod *= nd_dims[nz_new[n_end]]
                n_end += 1
        # the old group must be contiguous with respect to its own strides
        for k in range(oi, o_end - 1):
            if od[k][1] != od[k + 1][1] * od[k + 1][0]:
                return None
        stride = od[o_end - 1][1]
        for k in range(n_end - 1, ni - 1, -1):
            axis = nz_new[k]
            new_strides[axis] = stride
            stride *= nd_dims[axis]
        oi, ni = o_end, n_end
    if oi != len(od) or ni != len(nz_new):
        return None
    # size-1 axes get natural strides so registers stay sane
    for axis in range(3, -1, -1):
        if nd_dims[axis] == 1 and new_strides[axis] == 0:
            inner = new_strides[axis + 1] * nd_dims[axis + 1] if axis < 3 else elem
            new_strides[axis] = inner if axis == 3 else align_up(inner)
    if new_strides[3] != elem:
        return None  # the width axis would not be contiguous
    if any(s % 64 for s in new_strides[:3] if s):
        return None
    return new[0], new[1], new[2], new[3], new_strides[0], new_strides[1], new_strides[2]


def permute_view(v: View, perm4: tuple[int, int, int, int]) -> View | None:
    """Axes permuted (NCHW indices); only permutations that keep W last are views."""
    if perm4[3] != 3:
        return None
    dims = v.dims
    strides = (v.sn, v.sc, v.sh)
    nd = tuple(dims[p] for p in perm4)
    ns = tuple(strides[p] for p in perm4[:3])
    return View(v.buffer, v.offset, nd[0], nd[1], nd[2], nd[3], ns[0], ns[1], ns[2], v.elem)


def slice_view(v: View, axis4: int, start: int, count: int, step: int) -> View | None:
    """Elements ``start, start+step, …`` along one NCHW axis; width slices need step 1."""
    dims = list(v.dims)
    strides = [v.sn, v.sc, v.sh, v.elem]
    if axis4 == 3 and step != 1:
        return None
    offset = v.offset + start * strides[axis4]
    dims[axis4] = count
    strides[axis4] *= step
    return View(v.buffer, offset, dims[0], dims[1], dims[2], dims[3], strides[0], strides[1],
                strides[2], v.elem)
