"""The Tensor front end: PyTorch names over the tape.

Float tensors (float32, float64) live in tape slots and every op on them appends one record.
Integer and bool tensors are never differentiable: they hold a NumPy array and compute eagerly.
"""
import copy
import math
import weakref
from collections import namedtuple

import numpy as np

from . import dtypes as D
from .dtypes import Size, _Mode
from .ops import (DIFF, GA, GB, OPS, OP_ABS, OP_ADD, OP_CAST, OP_CEIL, OP_CLAMP, OP_COPY, OP_COS,
                  OP_COSH, OP_DIV, OP_ERF, OP_EXP, OP_EXPM1, OP_FILL, OP_FLOOR, OP_INDEX, OP_LOG,
                  OP_LOG1P, OP_MATMUL, OP_MAX, OP_MAXIMUM, OP_MEAN, OP_MIN, OP_MINIMUM, OP_MUL,
                  OP_NEG, OP_NORM, OP_POW, OP_RECIPROCAL, OP_RELU, OP_ROUND, OP_RSQRT,
                  OP_SETSTRIDED, OP_SIGMOID, OP_SIGN, OP_SIN, OP_SINH, OP_SQRT, OP_STRIDED, OP_SUB,
                  OP_SUM, OP_TANH, OP_TRUNC, SAVE_A, SAVE_B, SAVE_OUT)
from .tape import NONE, TAPE

_new = object.__new__
_MinMax = namedtuple("max", ["values", "indices"])
_NUMBER = (int, float, bool, np.number, np.bool_)
_NP_BINARY = {OP_ADD: np.add, OP_SUB: np.subtract, OP_MUL: np.multiply, OP_DIV: np.true_divide,
              OP_POW: np.power, OP_MAXIMUM: np.maximum, OP_MINIMUM: np.minimum}


def _is_one(alpha):
    """alpha == 1 for a plain Python number (a live compile input is never folded away)."""
    return type(alpha) in (int, float) and alpha == 1


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _contiguous_strides(shape):
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= d
    return st[::-1]


def _dim(d, nd, op="dim"):
    n = max(nd, 1)
    if not -n <= d < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {d}) in {op}")
    return d % n


def _rebuild(values, dtype_name, requires_grad):
    """A pickled tensor, loaded (Tensor.__reduce_ex__)."""
    dt = next(d for d in D.ALL if d.name == dtype_name)
    return tensor(values, dtype=dt).requires_grad_(requires_grad)


def _make(slot, shape, dt, rg=False, rec=-1, fn=None, cls=None):
    t = _new(cls or Tensor)
    t._slot = slot
    t._shape = shape
    t._dt = dt
    t._rg = rg
    t._rec = rec
    t._fn = fn
    t._epoch = TAPE.epoch
    TAPE.refs[slot] += 1
    if rec >= 0:
        TAPE.recrefs[rec] += 1
    return t


def _repoint(t, rec, fn):
    """Make record rec the grad_fn of t (after an in-place op on t). A view written in place
    also rewrites its base: one more record (base = view, a no-op on the shared values) makes
    the base's later uses flow into the write, as PyTorch's CopySlices."""
    if t._rec >= 0 and t._epoch == TAPE.epoch:
        TAPE.recrefs[t._rec] -= 1
    t._rg, t._rec, t._fn, t._epoch = True, rec, fn, TAPE.epoch
    if rec >= 0:
        TAPE.recrefs[rec] += 1
        base = t._base() if t._base is not None else None
        if base is not None and base._slot >= 0 and TAPE.off[base._slot] == TAPE.off[t._slot]:
            wb = TAPE.record(OP_COPY, t._slot, NONE, base._slot, base._shape, -1, DIFF | GA)
            _repoint(base, wb, "CopySlices")


def _make_np(arr, dt=None):
    t = _new(Tensor)
    t._slot = -1
    t._np = arr
    t._shape = arr.shape
    t._dt = dt or D.from_np(arr.dtype)
    t._rg = False
    t._rec = -1
    t._fn = None
    t._epoch = 0
    return t


def _from_array(arr, dt, requires_grad=False):
    """A new tensor holding a copy of NumPy array `arr` as dtype `dt`."""
    if not dt.is_floating_point:
        if requires_grad:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require "
                               "gradients")
        return _make_np(np.array(arr, dtype=dt.np, copy=True), dt)
    arr = np.asarray(arr)
    s = TAPE.alloc(dt.code, arr.size)
    o = TAPE.off[s]
    TAPE.F[dt.code][o:o + arr.size] = arr.reshape(-1)
    t = _make(s, tuple(arr.shape), dt)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _new_out(dt, shape):
    return TAPE.alloc(dt.code, _prod(shape))


def _record(op, a, b, out_shape, dt, rg, fn, aux=-1, saves=0, ga=False, gb=False):
    """Append one record computing a new slot from tensors/immediates a, b (slot ids)."""
    return _emit(op, a, b, (dt.code, _prod(out_shape)), out_shape, dt, rg, fn, aux, saves, ga, gb)


def _emit(op, a, b, key, out_shape, dt, rg, fn, aux, saves, ga, gb):
    """_record for an output slot of a known (dtype code, size) key: the per-op hot path."""
    tape = TAPE
    free = tape.free.get(key)
    s = free.pop() if free else tape.alloc(*key)
    t = _new(Tensor)
    t._slot = s
    t._shape = out_shape
    t._dt = dt
    t._epoch = tape.epoch
    tape.refs[s] += 1
    rec = tape.n
    tape.n = rec + 1
    tape.shapes.append(out_shape)
    if rg:
        va = vb = 0
        if saves and tape.bumped:           # versions are 0 until an in-place op
            bumped, vid, ver = tape.bumped, tape.vid, tape.ver
            if saves & SAVE_A and vid[a] in bumped:
                va = int(ver[vid[a]])
            if saves & SAVE_B:
                if vid[b] in bumped:
                    vb = int(ver[vid[b]])
            elif saves & SAVE_OUT and vid[s] in bumped:
                vb = int(ver[vid[s]])
        tape.rows.extend((op, a, b, s, aux, DIFF | (GA if ga else 0) | (GB if gb else 0) | saves,
                          va, vb))
        tape.recrefs.append(1)
        tape.n_live += 1
        t._rg = True
        t._rec = rec
        t._fn = fn or OPS[op].grad_fn
    else:
        tape.rows.extend((op, a, b, s, aux, 0, 0, 0))
        tape.recrefs.append(0)
        t._rg = False
        t._rec = -1
        t._fn = None
    return t


def _bump(t):
    if t._vt:
        v = int(TAPE.vid[t._slot])               # a view shares its base's counter
        TAPE.ver[v] += 1
        TAPE.bumped.add(v)
        TAPE.nbumps += 1


# ---- operand handling and type promotion ----
def _tensor_of(v, dt=None):
    if isinstance(v, Tensor):
        return v
    if isinstance(v, np.ndarray):
        return _from_array(v, dt or D.from_np(v.dtype))
    return tensor(v, dtype=dt)


def _promote_pair(a, b):
    ca, cb = D.category(a), D.category(b)
    if ca != cb:
        return a if ca > cb else b
    return D.from_np(np.promote_types(a.np, b.np))


def _result_dtype(x, y):
    """torch.result_type for a tensor x and a tensor or Python number y."""
    if not isinstance(y, Tensor):
        if isinstance(y, (bool, np.bool_)):
            return x._dt
        if isinstance(y, (int, np.integer)):
            return x._dt if not x._dt.is_bool else D.int64
        if isinstance(y, (float, np.floating)):
            return x._dt if x._dt.is_floating_point else D.get_default_dtype()
        raise TypeError(f"unsupported operand type {type(y).__name__} for a Tensor")
    if x._dt is y._dt:
        return x._dt
    dx, dy = len(x._shape) > 0, len(y._shape) > 0
    if dx == dy:
        return _promote_pair(x._dt, y._dt)
    d, z = (x, y) if dx else (y, x)         # a 0-d tensor only wins with a higher category
    return z._dt if D.category(z._dt) > D.category(d._dt) else d._dt


def _as_float(t, dt):
    """Tensor t as float dtype dt: itself, a differentiable cast, or a constant copy."""
    if t._dt is dt:
        return t
    if t._slot < 0:
        return _from_array(t._np, dt)
    rg = t._rg and _Mode.enabled
    return _record(OP_CAST, t._slot, NONE, t._shape, dt, rg, "ToCopyBackward0", ga=rg)


def _broadcast(sa, sb, name):
    """Output shape and metadata index (-1: elementwise or size-1 operands) of a broadcast."""
    if sa == sb:
        return sa, -1
    got = _BROADCASTS.get((sa, sb))
    if got is None:
        got = _broadcast_of(sa, sb, name)
        if len(_BROADCASTS) > 4096:
            _BROADCASTS.clear()
        _BROADCASTS[(sa, sb)] = got
    out, meta = got
    return out, -1 if meta is None else TAPE.add_meta(meta)


_BROADCASTS = {}    # (shape a, shape b) -> (out shape, metadata or None): a loop's ops repeat


def _broadcast_of(sa, sb, name):
    nd = max(len(sa), len(sb))
    pa = (1,) * (nd - len(sa)) + tuple(sa)
    pb = (1,) * (nd - len(sb)) + tuple(sb)
    out = []
    for i in range(nd):
        p, q = pa[i], pb[i]
        if p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        else:
            raise RuntimeError(
                f"The size of tensor a ({p}) must match the size of tensor b ({q}) at "
                f"non-singleton dimension {i} (in {name} with shapes {list(sa)} and {list(sb)})")
    out = tuple(out)
    n, na, nb = _prod(out), _prod(sa), _prod(sb)
    if (na == n or na == 1) and (nb == n or nb == 1):
        return out, None
    ca, cb = _contiguous_strides(pa), _contiguous_strides(pb)
    sta = [ca[i] if pa[i] == out[i] else 0 for i in range(nd)]
    stb = [cb[i] if pb[i] == out[i] else 0 for i in range(nd)]
    return out, (nd, *out, *sta, *stb)


def _binary_saves(op, ga, gb):
    if op == OP_MUL:
        return (SAVE_A if gb else 0) | (SAVE_B if ga else 0)
    if op == OP_DIV:
        return SAVE_B | (SAVE_A if gb else 0)
    if op in (OP_ADD, OP_SUB):
        return 0
    return SAVE_A | SAVE_B


# saves of a float tensor op a Python number: [x op c, c op x]
_SCALAR_SAVES = {op: [_binary_saves(op, True, False) & ~SAVE_B,
                      _binary_saves(op, False, True) & ~SAVE_A]
                 for op in (OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM)}


def _binary(op, x, y, fn=None, reverse=False):
    """x (a Tensor) op y (a Tensor or Python number); reverse computes y op x."""
    sx = x._slot
    ty = type(y)
    if sx >= 0 and (ty is float or ty is int):
        # fast path: float tensor with a Python number; the result has x's dtype and shape
        key = TAPE.key[sx]
        c = TAPE.consts[key[0]]
        c.append(float(y))
        sy = -len(c) - TAPE.nconst[key[0]]
        if x._rg and _Mode.enabled:
            if reverse:
                return _emit(op, sy, sx, key, x._shape, x._dt, True, fn, -1,
                             _SCALAR_SAVES[op][1], False, True)
            return _emit(op, sx, sy, key, x._shape, x._dt, True, fn, -1, _SCALAR_SAVES[op][0],
                         True, False)
        if reverse:
            sx, sy = sy, sx
        return _emit(op, sx, sy, key, x._shape, x._dt, False, None, -1, 0, False, False)
    if ty is Tensor and sx >= 0 and x._dt is y._dt and x._shape == y._shape:
        # fast path: two float tensors of one dtype and shape
        sy = y._slot
        rgx, rgy = x._rg, y._rg
        if (rgx or rgy) and _Mode.enabled:
            if reverse:
                sx, sy, rgx, rgy = sy, sx, rgy, rgx
            return _emit(op, sx, sy, TAPE.key[sx], x._shape, x._dt, True, fn, -1,
                         _binary_saves(op, rgx, rgy), rgx, rgy)
        if reverse:
            sx, sy = sy, sx
        return _emit(op, sx, sy, TAPE.key[sx], x._shape, x._dt, False, None, -1, 0, False, False)
    if isinstance(y, (list, tuple, np.ndarray)):
        y = _tensor_of(y)
    dt = _result_dtype(x, y)
    if op == OP_DIV and not dt.is_floating_point:
        dt = D.get_default_dtype()
    if not dt.is_floating_point:
        return _binary_numpy(op, x, y, dt, reverse)
    xa = _as_float(x, dt)
    if isinstance(y, Tensor):
        yb = _as_float(y, dt)
        sy, shape_y, rgy = yb._slot, yb._shape, yb._rg
    else:
        sy, shape_y, rgy = TAPE.const(dt.code, y), (), False
    sx, shape_x, rgx = xa._slot, xa._shape, xa._rg
    if reverse:
        sx, sy, shape_x, shape_y, rgx, rgy = sy, sx, shape_y, shape_x, rgy, rgx
    out, aux = _broadcast(shape_x, shape_y, OPS[op].name)
    rg = (rgx or rgy) and _Mode.enabled
    saves = _binary_saves(op, rgx, rgy) if rg else 0
    if sx < 0:
        saves &= ~SAVE_A
    if sy < 0:
        saves &= ~SAVE_B
    return _record(op, sx, sy, out, dt, rg, fn, aux, saves, rgx, rgy)


def _binary_numpy(op, x, y, dt, reverse):
    a = x._value()
    b = y._value() if isinstance(y, Tensor) else y
    if reverse:
        a, b = b, a
    try:
        _broadcast(np.shape(a), np.shape(b), OPS[op].name)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = _NP_BINARY[op](a, b)
    except ValueError as e:
        raise RuntimeError(f"{OPS[op].name}: {e}") from None
    return _make_np(np.asarray(r).astype(dt.np, copy=False), dt)


def _unary(op, x, fn=None, params=None):
    if not x._dt.is_floating_point:
        if op in (OP_NEG, OP_ABS, OP_RELU, OP_ROUND, OP_CLAMP, OP_SIGN, OP_FLOOR, OP_CEIL,
                  OP_TRUNC):                    # integer in, integer out (as torch)
            ref = OPS[op].ref if op != OP_CLAMP else (lambda v: np.clip(v, *params))
            return _make_np(np.asarray(ref(x._np)).astype(x._dt.np), x._dt)
        x = _as_float(x, D.get_default_dtype())
    aux = -1
    if params is not None:
        aux = -TAPE.const(x._dt.code, params[0]) - 1
        TAPE.const(x._dt.code, params[1])
    if x._rg and _Mode.enabled:
        return _emit(op, x._slot, NONE, TAPE.key[x._slot], x._shape, x._dt, True, fn, aux,
                     OPS[op].saves, True, False)
    return _emit(op, x._slot, NONE, TAPE.key[x._slot], x._shape, x._dt, False, None, aux, 0,
                 False, False)


def _reduce(op, x, dim=None, keepdim=False, fn=None, spread=None):
    if not x._dt.is_floating_point:
        if op in (OP_SUM, OP_MAX, OP_MIN):
            ref = {OP_SUM: np.sum, OP_MAX: np.max, OP_MIN: np.min}[op]
            dt = D.int64 if op == OP_SUM and not x._dt.is_floating_point else x._dt
            r = ref(x._np, axis=dim, keepdims=keepdim)
            return _make_np(np.asarray(r).astype(dt.np), dt)
        raise RuntimeError(f"{OPS[op].name}(): could not infer output dtype. Input dtype must be "
                           f"either a floating point or complex dtype. Got: {x._dt.name.title()}")
    shape = x._shape
    if isinstance(dim, (tuple, list)):
        if op in (OP_SUM, OP_MEAN) and len(dim) > 0:
            dims = sorted({_dim(d, len(shape), OPS[op].name) for d in dim}, reverse=True)
            r = x
            for d in dims:
                r = _reduce(op, r, d, keepdim, fn)
            return r
        if len(dim) == 1:
            dim = dim[0]
        elif len(dim) == 0:
            dim = None
        else:
            raise NotImplementedError(f"{OPS[op].name} over several dims")
    if dim is None:
        outer, n, inner = 1, _prod(shape), 1
        out = tuple(1 for _ in shape) if keepdim else ()
    else:
        d = _dim(dim, len(shape), OPS[op].name)
        n = shape[d] if shape else 1
        outer, inner = _prod(shape[:d]), _prod(shape[d + 1:])
        out = shape[:d] + ((1,) if keepdim else ()) + shape[d + 1:] if shape else ()
    if n == 0 and op in (OP_MAX, OP_MIN):
        raise IndexError(f"{OPS[op].name}(): Expected reduction dim to be specified for "
                         f"input.numel() == 0 (shape {list(shape)})")
    if spread is None:
        spread = dim is None
    aux = TAPE.add_meta([outer, n, inner, int(spread)])
    rg = x._rg and _Mode.enabled
    r = _record(op, x._slot, NONE, out, x._dt, rg, fn, aux, OPS[op].saves if rg else 0, rg)
    if rg and op in (OP_MAX, OP_MIN):
        # backward compares the input with the saved result (PyTorch saves the indices): hand
        # out a copy, so in-place writes to the result leave the saved one alone
        return _record(OP_COPY, r._slot, NONE, out, x._dt, True, r._fn, ga=True)
    return r


def _strided(x, shape, strides, base, fn):
    """A copy of the strided view (shape, element strides, base offset) of x."""
    nd = len(shape)
    aux = TAPE.add_meta([nd, *shape, *strides, base])
    rg = x._rg and _Mode.enabled
    return _record(OP_STRIDED, x._slot, NONE, tuple(shape), x._dt, rg, fn, aux, 0, rg)


def _alias(x, shape, fn):
    """A tensor sharing x's slot with another shape (view, reshape, unsqueeze...)."""
    if x._slot < 0:
        return _make_np(x._np.reshape(shape), x._dt)
    rg = x._rg and _Mode.enabled
    if rg and x._epoch != TAPE.epoch and x._rec >= 0:
        t = _make(x._slot, shape, x._dt, True, -1, fn)
        t._rec, t._epoch = x._rec, x._epoch     # the graph is gone: backward will say so
        return t
    if not rg:
        return _make(x._slot, shape, x._dt)
    # a differentiable view: a slot of its own naming the same values (its own gradient), made
    # by a copy record that is a no-op forward and hands the gradient to the base backward
    s = TAPE.alias(x._slot)
    rec = TAPE.record(OP_COPY, x._slot, NONE, s, shape, -1, DIFF | GA)
    t = _make(s, shape, x._dt, True, rec, fn)
    t._base = weakref.ref(x)
    return t


def _infer_shape(shape, n, op="view"):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if -1 in shape:
        rest = _prod(s for s in shape if s != -1)
        if rest == 0 or n % rest:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {n} ({op})")
        shape = tuple(n // rest if s == -1 else s for s in shape)
    if _prod(shape) != n or any(s < 0 for s in shape):
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {n} ({op})")
    return shape


# ---- indexing ----
_FAKE = np.zeros(1, np.uint8)


def _basic_view(shape, idx):
    """(shape, element strides, base offset) of x[idx] for basic indices. Ints and forward
    slices (X[i], X[:, j], X[a:b]: what datasets and loops index with) are computed here;
    anything else (None, Ellipsis, NumPy integers, negative steps, empty results) by NumPy."""
    if len(idx) <= len(shape):
        st = _contiguous_strides(shape)
        out, ost, base = [], [], 0
        for d, i in enumerate(idx):
            n = shape[d]
            if type(i) is int:
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
                base += (i + n if i < 0 else i) * st[d]
            elif type(i) is slice and (i.step is None or i.step > 0):
                start, stop, step = i.indices(n)
                if stop <= start:
                    break                       # empty: NumPy's offsets
                out.append((stop - start + step - 1) // step)
                ost.append(st[d] * step)
                base += start * st[d]
            else:
                break
        else:
            k = len(idx)
            return tuple(out) + tuple(shape[k:]), ost + st[k:], base
    return _numpy_view(shape, idx)


def _numpy_view(shape, idx):
    """_basic_view by NumPy, on a strided stand-in that owns no data (only its metadata is
    read)."""
    st = _contiguous_strides(shape)
    fake = np.lib.stride_tricks.as_strided(_FAKE, shape=shape, strides=st, writeable=False)
    if not any(i is Ellipsis for i in idx):
        idx = idx + (Ellipsis,)                 # a 0-d view, never a NumPy scalar
    v = fake[idx]
    base = v.__array_interface__["data"][0] - fake.__array_interface__["data"][0]
    return tuple(v.shape), list(v.strides), base


def _is_basic(i):
    return i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) and \
        not isinstance(i, (bool, np.bool_))


def _index_arg(i):
    if isinstance(i, Tensor):
        if i._dt.is_floating_point:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return i._value()
    if isinstance(i, (list, np.ndarray)):
        a = np.asarray(i)
        if a.dtype.kind == "f":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return a
    return i


def _numpy_index_error(e, shape):
    msg = str(e).replace("axis", "dimension")
    return IndexError(f"{msg} (indexing a tensor of shape {list(shape)})")


def _rows(x, idx):
    """x[idx] for an integer array on dim 0: one INDEX record of row offsets."""
    n0 = x._shape[0] if x._shape else 0
    if idx.dtype == np.bool_:
        return None
    flat = idx.reshape(-1).astype(np.int64, copy=False)
    if flat.size:
        hi, lo = flat.max(), flat.min()
        if hi >= n0 or lo < -n0:
            bad = int(hi) if hi >= n0 else int(lo)
            raise IndexError(f"index {bad} is out of bounds for dimension 0 with size {n0}")
        if lo < 0:
            flat = flat % n0
    inner = _prod(x._shape[1:])
    aux = TAPE.add_meta_array([idx.size, inner], flat * inner if inner != 1 else flat)
    rg = x._rg and _Mode.enabled
    return _record(OP_INDEX, x._slot, NONE, tuple(idx.shape) + x._shape[1:], x._dt, rg,
                   "IndexBackward0", aux, 0, rg)


def _getitem(x, idx):
    if not isinstance(idx, tuple):
        idx = (idx,)
    idx = tuple(_index_arg(i) for i in idx)
    if x._slot < 0:
        try:
            return _make_np(np.array(x._np[idx]), x._dt)
        except IndexError as e:
            raise _numpy_index_error(e, x._shape) from None
    if all(_is_basic(i) for i in idx):
        try:
            shape, strides, base = _basic_view(x._shape, idx)
        except IndexError as e:
            raise _numpy_index_error(e, x._shape) from None
        if any(isinstance(i, slice) and i.step is not None and i.step <= 0 for i in idx):
            raise ValueError("step must be greater than zero")
        if _prod(shape) == _prod(x._shape) and base == 0 and \
                strides == _contiguous_strides(shape):
            return _alias(x, shape, "AliasBackward0")
        fn = "SelectBackward0" if any(isinstance(i, (int, np.integer)) for i in idx) \
            else "SliceBackward0"
        return _strided(x, shape, strides, base, fn)
    if len(idx) == 1 and isinstance(idx[0], np.ndarray) and idx[0].dtype != np.bool_:
        return _rows(x, idx[0])
    if x._dt.is_floating_point and _prod(x._shape) > 50_000_000:
        raise NotImplementedError("advanced indexing other than rows of a very large tensor")
    try:
        src = np.arange(_prod(x._shape)).reshape(x._shape)[idx]
    except IndexError as e:
        raise _numpy_index_error(e, x._shape) from None
    aux = TAPE.add_meta([src.size, 1, *src.reshape(-1).tolist()])
    rg = x._rg and _Mode.enabled
    return _record(OP_INDEX, x._slot, NONE, tuple(src.shape), x._dt, rg, "IndexBackward0", aux,
                   0, rg)


# PyTorch's names of dtypes in its error messages: ScalarType names and C++ type names
_SCALAR_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
                 "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
_CPP_NAMES = {"float32": "float", "float64": "double", "int64": "long int", "int32": "int",
              "int16": "short int", "int8": "signed char", "uint8": "unsigned char",
              "bool": "bool"}


def _check_cast(result, out):
    """An in-place op may not write a result of a higher kind (float into int, int into bool)."""
    if D.category(result) > D.category(out):
        raise RuntimeError(f"result type {_SCALAR_NAMES[result.name]} can't be cast to the "
                           f"desired output type {_SCALAR_NAMES[out.name]}")


def _named(t, fn):
    """t with the grad_fn name PyTorch gives a composite op's result."""
    if t._fn is not None:
        t._fn = fn
    return t


def _scaled(x, value):
    return x if _is_one(value) else value * x


def _tensor_arg(o, name):
    if not isinstance(o, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 1) must be Tensor, not "
                        f"{type(o).__name__}")
    return o


def _check_addcdiv(t1, t2):
    if all(isinstance(t, Tensor) and not t._dt.is_floating_point for t in (t1, t2)):
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a "
                           "future release addcdiv will perform a true division of tensor1 and "
                           "tensor2. Use (input + value * tensor1 / tensor2) for float inputs.")


def _check_lerp(t, end, weight):
    if not t._dt.is_floating_point:
        raise NotImplementedError(f'"lerp_kernel_scalar" not implemented for '
                                  f"'{_SCALAR_NAMES[t._dt.name]}'")
    for name, v in (("end", end), ("weight", weight)):
        if name == "end" and not isinstance(v, Tensor):
            raise TypeError(f"lerp(): argument 'end' (position 1) must be Tensor, not "
                            f"{type(v).__name__}")
        if isinstance(v, Tensor) and v._dt is not t._dt:
            raise RuntimeError(f"expected dtype {_CPP_NAMES[t._dt.name]} for `{name}` but got "
                               f"dtype {_CPP_NAMES[v._dt.name]}")


def _check_random(t, kernel):
    if not t._dt.is_floating_point:
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{_SCALAR_NAMES[t._dt.name]}'")


def _check_inplace(t, other_rg=False):
    if _Mode.enabled and t._rg and t._fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    base = t._base() if t._base is not None else None
    if _Mode.enabled and base is not None and base._rg and base._fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")


def _setitem(x, idx, value):
    _check_inplace(x)
    if not isinstance(idx, tuple):
        idx = (idx,)
    idx = tuple(_index_arg(i) for i in idx)
    if x._slot < 0:
        v = value._value() if isinstance(value, Tensor) else value
        try:
            x._np[idx] = v
        except IndexError as e:
            raise _numpy_index_error(e, x._shape) from None
        return
    if not all(_is_basic(i) for i in idx):
        if isinstance(value, Tensor) and value._rg:
            raise NotImplementedError("assigning a tensor that requires grad through advanced "
                                      "indexing (index_put) is not supported yet")
        v = value._value() if isinstance(value, Tensor) else value
        if x._rg and _Mode.enabled:
            # x = x * (1 - mask) + values: the overwritten elements get no gradient
            mask = np.zeros(x._shape, x._dt.np)
            vals = np.zeros(x._shape, x._dt.np)
            try:
                mask[idx] = 1
                vals[idx] = v
            except IndexError as e:
                raise _numpy_index_error(e, x._shape) from None
            keep = _from_array(1 - mask, x._dt)
            x._assign(x * keep + _from_array(vals, x._dt), "IndexPutBackward0")
            return
        arr = x._value().reshape(x._shape)
        try:
            arr[idx] = v
        except IndexError as e:
            raise _numpy_index_error(e, x._shape) from None
        _bump(x)
        return
    try:
        shape, strides, base = _basic_view(x._shape, idx)
    except IndexError as e:
        raise _numpy_index_error(e, x._shape) from None
    if isinstance(value, Tensor):
        v = _as_float(value, x._dt)
        src, vshape, vrg = v._slot, v._shape, v._rg
    else:
        src, vshape, vrg = TAPE.const(x._dt.code, value), (), False
    if len(vshape) > len(shape) and all(d == 1 for d in vshape[:len(vshape) - len(shape)]):
        vshape = vshape[len(vshape) - len(shape):]
    out, _ = _broadcast(shape, vshape, "copy_") if vshape != shape else (shape, -1)
    if out != tuple(shape):
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(vshape)} cannot be "
                           f"broadcast to indexing result of shape {list(shape)}")
    pv = (1,) * (len(shape) - len(vshape)) + tuple(vshape)
    cv = _contiguous_strides(pv)
    sst = [cv[i] if pv[i] == shape[i] else 0 for i in range(len(shape))]
    aux = TAPE.add_meta([len(shape), *shape, *strides, base, *sst])
    vrg = vrg and _Mode.enabled
    old_rg = x._rg and _Mode.enabled
    rg = vrg or old_rg
    flags = (DIFF | (GA if vrg else 0) | (GB if old_rg else 0)) if rg else 0
    rec = TAPE.record(OP_SETSTRIDED, src, NONE, x._slot, x._shape, aux, flags)
    _bump(x)
    if rg:
        _repoint(x, rec, "CopySlices")


# ---- matmul ----
def _matmul(a, b, name="matmul"):
    if not isinstance(b, Tensor):
        raise TypeError(f"{name}(): argument 'other' must be Tensor, not {type(b).__name__}")
    if a._dt is not b._dt:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a._dt.name} != {b._dt.name} ({name} of shapes {list(a._shape)} "
                           f"and {list(b._shape)})")
    if not a._dt.is_floating_point:
        return _make_np(np.matmul(a._np, b._np), a._dt)
    sa, sb = a._shape, b._shape
    if not sa or not sb:
        raise RuntimeError(f"both arguments to {name} need to be at least 1D, but they are "
                           f"{len(sa)}D and {len(sb)}D")
    A = (1,) + sa if len(sa) == 1 else sa
    B = sb + (1,) if len(sb) == 1 else sb
    n, k, k2, p = A[-2], A[-1], B[-2], B[-1]
    if k != k2:
        if len(sa) == 1 and len(sb) == 1:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{k}] and src [{k2}] "
                               f"to have the same number of elements, but got {k} and {k2} "
                               f"elements respectively ({name})")
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({n}x{k} and {k2}x{p}) "
                           f"({name} of shapes {list(sa)} and {list(sb)})")
    batch, _ = _broadcast(A[:-2], B[:-2], name) if A[:-2] != B[:-2] else (A[:-2], -1)
    nb = _prod(batch)
    pa = (1,) * (len(batch) - len(A[:-2])) + A[:-2]
    pb = (1,) * (len(batch) - len(B[:-2])) + B[:-2]
    if nb == 1 or (pa == batch and pb == batch):
        offa = [i * n * k for i in range(nb)]
        offb = [i * k * p for i in range(nb)]
    else:
        ia = np.arange(_prod(pa)).reshape(pa)
        ib = np.arange(_prod(pb)).reshape(pb)
        offa = (np.broadcast_to(ia, batch).reshape(-1) * n * k).tolist()
        offb = (np.broadcast_to(ib, batch).reshape(-1) * k * p).tolist()
    out = batch + ((n,) if len(sa) > 1 else ()) + ((p,) if len(sb) > 1 else ())
    aux = TAPE.add_meta([nb, n, k, p, *offa, *offb])
    rg = (a._rg or b._rg) and _Mode.enabled
    fn = ("DotBackward0" if len(sa) == len(sb) == 1 else "MvBackward0" if len(sb) == 1 else
          "MmBackward0" if len(sa) == 2 and len(sb) == 2 else
          "BmmBackward0" if len(sa) == len(sb) == 3 else "MatmulBackward0")
    saves = ((SAVE_A if b._rg else 0) | (SAVE_B if a._rg else 0)) if rg else 0
    return _record(OP_MATMUL, a._slot, b._slot, out, a._dt, rg, fn, aux, saves, a._rg, b._rg)


class Tensor:
    """A multi-dimensional array with autograd, named and behaving as torch.Tensor."""
    __slots__ = ("_slot", "_shape", "_dt", "_rg", "_rec", "_fn", "_epoch", "__weakref__",
                 "__dict__")
    _grad = None        # rarely set: class defaults keep the per-op path short
    _np = None          # the NumPy value of an integer/bool tensor
    _vt = True          # in-place writes bump the version counter (not through .data)
    _base = None        # weak reference to the tensor a differentiable view was made from
    _src = None         # (comparison, slot a, slot b, value b, dtype) of a comparison result
                        # computed while tapegrad.compile records
    __hash__ = object.__hash__
    __array_priority__ = 1000

    def __new__(cls, *args, **kwargs):
        return _construct(cls, *args, **kwargs)

    def __del__(self):
        s = self._slot
        if s >= 0:
            try:
                tape = TAPE
                r = tape.refs[s] - 1
                tape.refs[s] = r
                if r == 0:
                    if tape.n:
                        tape.deferred.append(s)
                    else:
                        tape._free(s)
                if self._rec >= 0 and self._epoch == tape.epoch:
                    tape.recrefs[self._rec] -= 1
            except Exception:       # interpreter shutdown
                pass

    # ---- copying and pickling: new storage, as torch's ----
    _INTERNAL = frozenset(("_grad", "_base", "_src", "_np", "_vt"))

    def __deepcopy__(self, memo):
        """A new leaf holding a copy of the values, requires_grad, .grad and attributes."""
        if id(self) in memo:
            return memo[id(self)]
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.")
        with D.no_grad():
            new = self.clone()
        new.requires_grad_(self.requires_grad)
        memo[id(self)] = new
        if self.grad is not None:
            new.grad = copy.deepcopy(self.grad, memo)
        for k, v in self.__dict__.items():
            if k not in self._INTERNAL:
                setattr(new, k, copy.deepcopy(v, memo))
        return new

    def __reduce_ex__(self, proto):
        """Pickled (and copy.copy'd) as its values: storage is never shared with the copy."""
        if self.requires_grad and not self.is_leaf:
            raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which "
                               "requires_grad, since autograd does not support crossing "
                               "process boundaries.  If you just want to transfer the data, "
                               "call detach() on the tensor before serializing (e.g., putting "
                               "it on the queue).")
        state = {k: v for k, v in self.__dict__.items() if k not in self._INTERNAL}
        return (_rebuild, (self.detach().numpy(), self._dt.name, self.requires_grad), state)

    # ---- values ----
    def _value(self):
        """The current value as a NumPy array (a view of the arena for float tensors)."""
        if self._slot < 0:
            if self._src is not None and TAPE.rec is not None:
                TAPE.rec.read_sources(self)
            return self._np
        return TAPE.value(self._slot).reshape(self._shape)

    def numpy(self, *, force=False):
        if self._rg and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return np.array(self._value())

    def __array__(self, dtype=None, copy=None):
        a = np.array(self._value())
        return a if dtype is None else a.astype(dtype)

    def tolist(self):
        return self._value().tolist()

    def item(self):
        n = _prod(self._shape)
        if n != 1:
            raise RuntimeError(f"a Tensor with {n} elements cannot be converted to Scalar")
        if TAPE.rec is not None:
            if self._src is not None:
                TAPE.rec.read_compare(self)     # guard the comparison, not the values
                return self._np.reshape(-1)[0].item()
            if self._slot >= 0:                 # guarded by how Python uses the number
                return TAPE.rec.read_number(self)
        return self._value().reshape(-1)[0].item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._dt.is_floating_point:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __bool__(self):
        n = _prod(self._shape)
        if n != 1:
            what = "more than one value" if n else "no values"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return bool(self.item())

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __iter__(self):
        if not self._shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._shape[0]))

    def __repr__(self):
        from .compile import Quiet
        from .printing import tensor_repr
        with Quiet():                           # printing records no guard
            return tensor_repr(self, self._value())

    def __format__(self, spec):
        """f'{t:.2f}' formats the number of a 0-d tensor; other tensors format only as str(t)
        (a format spec raises TypeError, as in PyTorch)."""
        if not self._shape and type(self) is Tensor:
            from .compile import Quiet
            with Quiet():
                return format(self._value().item(), spec)
        return object.__format__(self, spec)

    # ---- metadata ----
    @property
    def shape(self):
        return Size(self._shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._shape)
        return self._shape[_dim(dim, len(self._shape), "size")]

    def dim(self):
        return len(self._shape)

    ndim = property(dim)

    def numel(self):
        return _prod(self._shape)

    nelement = numel

    @property
    def dtype(self):
        return self._dt

    @property
    def device(self):
        return D.device("cpu")

    is_cuda = False
    is_sparse = False

    def is_floating_point(self):
        return self._dt.is_floating_point

    def element_size(self):
        return self._dt.itemsize

    # ---- autograd ----
    @property
    def requires_grad(self):
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad of a leaf in place; returns self."""
        flag = bool(requires_grad)
        if self._fn is not None:
            if flag:
                return self
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if flag and not self._dt.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._rg = flag
        if self._slot >= 0:
            TAPE.set_leaf(self._slot, self, 1 if flag else 0)
        return self

    @property
    def is_leaf(self):
        return self._fn is None

    @property
    def grad_fn(self):
        return None if self._fn is None else _grad_fn(self._fn, self._rec, self._epoch)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, g):
        if g is None:
            self._grad = None
            if self._slot >= 0:
                TAPE.set_grad_of(self._slot, -1)
            return
        if not isinstance(g, Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of "
                            f"type {type(g).__name__}")
        if g._shape != self._shape or g._dt is not self._dt:
            raise RuntimeError(f"assigned grad has data of a different size or type: "
                               f"{list(g._shape)} {g._dt} vs {list(self._shape)} {self._dt}")
        self._grad = g
        TAPE.set_grad_of(self._slot, g._slot)

    def retain_grad(self):
        """Keep .grad for this non-leaf tensor after backward."""
        if not self._rg:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        owner = TAPE.owners.get(self._slot)
        if self._fn is None or owner is not None and owner() is self or TAPE.retain[self._slot]:
            return
        from .factory import zeros
        g = zeros(self._shape, dtype=self._dt)
        TAPE.retain[self._slot] = 1
        TAPE.set_grad_of(self._slot, g._slot)
        TAPE.owners[self._slot] = _Retained(self, g)

    @property
    def retains_grad(self):
        return self._slot >= 0 and self._fn is not None and bool(TAPE.retain[self._slot])

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d self / d leaf into each leaf's .grad (PyTorch semantics)."""
        from .autograd import _backward
        _backward(self, gradient, retain_graph, create_graph, inputs)

    def detach(self):
        if self._slot < 0:
            return _make_np(self._np, self._dt)
        return _make(self._slot, self._shape, self._dt)

    def detach_(self):
        _repoint(self, -1, None)
        self._rg = False
        return self

    @property
    def data(self):
        t = self.detach()
        t._vt = False                   # writes through .data bypass autograd's version check
        return t

    @data.setter
    def data(self, v):
        if not isinstance(v, Tensor):
            raise TypeError(f"data must be a Tensor, not {type(v).__name__}")
        if v._dt is self._dt and v._shape == self._shape and self._slot >= 0:
            TAPE.record(OP_COPY, v._slot, NONE, self._slot, self._shape)
            return
        if self._slot < 0 or not v._dt.is_floating_point:
            raise RuntimeError("setting .data to a tensor of another dtype is not supported")
        TAPE.refs[v._slot] += 1
        if self._rg and self._fn is None:
            TAPE.set_leaf(v._slot, self, 1)
        old = self._slot
        self._slot, self._shape, self._dt = v._slot, v._shape, v._dt
        TAPE.release(old)

    # ---- arithmetic ----
    def __add__(self, o):
        return _binary(OP_ADD, self, o)

    def __radd__(self, o):
        return _binary(OP_ADD, self, o, reverse=True)

    def __sub__(self, o):
        return _binary(OP_SUB, self, o)

    def __rsub__(self, o):
        return _binary(OP_SUB, self, o, "RsubBackward1", reverse=True)

    def __mul__(self, o):
        return _binary(OP_MUL, self, o)

    def __rmul__(self, o):
        return _binary(OP_MUL, self, o, reverse=True)

    def __truediv__(self, o):
        return _binary(OP_DIV, self, o)

    def __rtruediv__(self, o):
        return _binary(OP_DIV, self, o, reverse=True)

    def __pow__(self, o):
        return _binary(OP_POW, self, o, None if isinstance(o, Tensor) else "PowBackward0")

    def __rpow__(self, o):
        return _binary(OP_POW, self, o, reverse=True)

    def __matmul__(self, o):
        return _matmul(self, o)

    def __rmatmul__(self, o):
        return _matmul(_tensor_of(o), self)

    def __neg__(self):
        return _unary(OP_NEG, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _unary(OP_ABS, self)

    def __floordiv__(self, o):
        r = self._value() // (o._value() if isinstance(o, Tensor) else o)
        return _make_np(np.asarray(r)) if not self._dt.is_floating_point else tensor(
            r, dtype=self._dt)

    def __mod__(self, o):
        r = np.asarray(np.mod(self._value(), o._value() if isinstance(o, Tensor) else o))
        return _make_np(r) if not self._dt.is_floating_point else tensor(r, dtype=self._dt)

    def add(self, o, alpha=1):
        return _binary(OP_ADD, self, o if _is_one(alpha) else o * alpha)

    def sub(self, o, alpha=1):
        return _binary(OP_SUB, self, o if _is_one(alpha) else o * alpha)

    mul = __mul__
    multiply = __mul__
    div = __truediv__
    divide = __truediv__
    pow = __pow__
    matmul = __matmul__
    neg = __neg__
    abs = __abs__

    def maximum(self, other):
        return _binary(OP_MAXIMUM, self, _tensor_arg(other, "maximum"))

    def minimum(self, other):
        return _binary(OP_MINIMUM, self, _tensor_arg(other, "minimum"))

    def addcmul(self, tensor1, tensor2, *, value=1):
        """self + value * tensor1 * tensor2, computed as self + (value * tensor1) * tensor2."""
        return _named(self + _scaled(tensor1, value) * tensor2, "AddcmulBackward0")

    def addcdiv(self, tensor1, tensor2, *, value=1):
        """self + value * tensor1 / tensor2, computed as self + (value * tensor1) / tensor2."""
        _check_addcdiv(tensor1, tensor2)
        return _named(self + _scaled(tensor1, value) / tensor2, "AddcdivBackward0")

    def lerp(self, end, weight):
        """self + weight * (end - self); where |weight| >= 0.5, end - (end - self) * (1 - weight)
        (PyTorch's two formulas: exact at weight 0 and 1)."""
        _check_lerp(self, end, weight)
        if not isinstance(weight, Tensor):
            if abs(weight) < 0.5:
                return _named(self + weight * (end - self), "LerpBackward0")
            one = self._dt.np.type(1)               # 1 - weight in the tensor's precision
            w = float(one - self._dt.np.type(weight)) if type(weight) in (int, float) else \
                1 - weight
            return _named(end - (end - self) * w, "LerpBackward0")
        small = self + weight * (end - self)
        large = end - (end - self) * (1 - weight)
        mask = np.broadcast_to(np.abs(weight._value()) < 0.5, small._shape).reshape(-1)
        if mask.all() or not mask.any():
            return _named(small if mask.all() else large, "LerpBackward1")
        both = cat([large.reshape(-1), small.reshape(-1)])        # pick per element
        pick = _make_np(np.arange(mask.size) + mask.size * mask, D.int64)
        return _named(both[pick].reshape(small._shape), "LerpBackward1")

    def mm(self, o):
        if len(self._shape) != 2 or not isinstance(o, Tensor) or len(o._shape) != 2:
            raise RuntimeError(f"mm: both arguments must be 2D matrices, got shapes "
                               f"{list(self._shape)} and {list(getattr(o, '_shape', ()))}")
        return _matmul(self, o, "mm")

    def mv(self, v):
        if len(self._shape) != 2 or len(v._shape) != 1:
            raise RuntimeError(f"mv: expected a matrix and a vector, got shapes "
                               f"{list(self._shape)} and {list(v._shape)}")
        return _matmul(self, v, "mv")

    def dot(self, o):
        if len(self._shape) != 1 or len(o._shape) != 1:
            raise RuntimeError(f"1D tensors expected, but got {len(self._shape)}D and "
                               f"{len(o._shape)}D tensors (dot)")
        return _matmul(self, o, "dot")

    def exp(self):
        return _unary(OP_EXP, self)

    def log(self):
        return _unary(OP_LOG, self)

    def sqrt(self):
        return _unary(OP_SQRT, self)

    def sin(self):
        return _unary(OP_SIN, self)

    def cos(self):
        return _unary(OP_COS, self)

    def tanh(self):
        return _unary(OP_TANH, self)

    def sigmoid(self):
        return _unary(OP_SIGMOID, self)

    def relu(self):
        return _unary(OP_RELU, self)

    def log1p(self):
        return _unary(OP_LOG1P, self)

    def expm1(self):
        return _unary(OP_EXPM1, self)

    def sign(self):
        return _unary(OP_SIGN, self)

    def floor(self):
        return _unary(OP_FLOOR, self)

    def ceil(self):
        return _unary(OP_CEIL, self)

    def trunc(self):
        return _unary(OP_TRUNC, self)

    def reciprocal(self):
        return _unary(OP_RECIPROCAL, self)

    def rsqrt(self):
        return _unary(OP_RSQRT, self)

    def sinh(self):
        return _unary(OP_SINH, self)

    def cosh(self):
        return _unary(OP_COSH, self)

    def erf(self):
        return _unary(OP_ERF, self)

    fix = trunc

    def round(self, decimals=0):
        if decimals:
            s = 10.0 ** decimals
            return _unary(OP_ROUND, self * s) / s
        return _unary(OP_ROUND, self)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            r = self
            if min is not None:
                r = _binary(OP_MAXIMUM, r, min)
            if max is not None:
                r = _binary(OP_MINIMUM, r, max)
            return r
        lo = -math.inf if min is None else float(min)
        hi = math.inf if max is None else float(max)
        x = self
        if not self._dt.is_floating_point and any(isinstance(v, (float, np.floating))
                                                  for v in (min, max)):
            x = self.to(D.get_default_dtype())
        return _unary(OP_CLAMP, x, params=(lo, hi))

    clip = clamp

    def clamp_min(self, min):
        return _named(self.clamp(min=min), f"ClampMinBackward{int(isinstance(min, Tensor))}")

    def clamp_max(self, max):
        return _named(self.clamp(max=max), f"ClampMaxBackward{int(isinstance(max, Tensor))}")

    def square(self):
        return self * self

    def where(self, condition, other):
        return where(condition, self, other)

    def masked_fill(self, mask, value):
        """value where mask holds (a Python number or a 0-d tensor), self elsewhere."""
        if isinstance(value, Tensor) and value.dim():
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value.dim()} dimension(s).")
        mask = _tensor_of(mask)
        if not mask._dt.is_bool:
            raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with "
                               f"dtype {mask._dt.name}")
        if _broadcast(mask._shape, self._shape, "masked_fill")[0] != self._shape:
            raise RuntimeError(f"masked_fill: the mask of shape {list(mask._shape)} does not "
                               f"broadcast to the tensor's shape {list(self._shape)}")
        v = value if isinstance(value, Tensor) else tensor(value, dtype=self._dt)
        return _named(where(mask, v.to(self._dt), self), "MaskedFillBackward0")

    def masked_fill_(self, mask, value):
        return self.copy_(self.masked_fill(mask, value))

    def softmax(self, dim, dtype=None):
        from .nn.functional import softmax
        return softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        from .nn.functional import log_softmax
        return log_softmax(self, dim, dtype=dtype)

    def logsumexp(self, dim, keepdim=False):
        from .nn.functional import logsumexp
        return logsumexp(self, dim, keepdim)

    # ---- reductions ----
    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        return _reduce(OP_SUM, x, dim, keepdim, "SumBackward0" if dim is None else
                       "SumBackward1")

    def mean(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        return _reduce(OP_MEAN, x, dim, keepdim, "MeanBackward0" if dim is None else
                       "MeanBackward1")

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """Variance over dim (all elements by default), dividing by N - correction (1: the
        unbiased estimate; unbiased=False means correction=0)."""
        if isinstance(dim, bool):                   # var(unbiased) call form
            dim, unbiased = None, dim
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        if not self._dt.is_floating_point:
            raise RuntimeError(f"std and var only support floating point and complex dtypes, got "
                               f"{_SCALAR_NAMES[self._dt.name]}")
        dims = range(self.dim()) if dim is None else (dim,) if isinstance(dim, int) else dim
        n = _prod(self._shape[_dim(d, self.dim(), "var")] for d in dims) if self._shape else 1
        d = self - self.mean(dim, keepdim=True)
        return _named((d * d).sum(dim, keepdim) / max(n - correction, 0), "VarBackward0")

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """Standard deviation: sqrt of var with the same arguments."""
        return _named(self.var(dim, unbiased, keepdim, correction=correction).sqrt(),
                      "StdBackward0")

    def norm(self, p="fro", dim=None, keepdim=False):
        if p not in ("fro", 2, 2.0):
            a = self.abs()
            if p in (1, 1.0):
                return a.sum(dim, keepdim)
            if p == math.inf:
                return a.max() if dim is None else a.max(dim, keepdim).values
            return (a ** p).sum(dim, keepdim) ** (1.0 / p)
        if isinstance(dim, (tuple, list)) and len(dim) > 1:
            return (self * self).sum(dim, keepdim).sqrt()
        return _reduce(OP_NORM, self, dim, keepdim, "LinalgVectorNormBackward0")

    def _extremum(self, op, dim, keepdim, name):
        if dim is None:
            return _reduce(op, self, None, False, "MaxBackward1" if op == OP_MAX else
                           "MinBackward1")
        if isinstance(dim, Tensor):
            return _binary(OP_MAXIMUM if op == OP_MAX else OP_MINIMUM, self, dim)
        values = _reduce(op, self, dim, keepdim, "MaxBackward0" if op == OP_MAX else
                         "MinBackward0", spread=False)
        v = self._value()
        d = _dim(dim, len(self._shape))
        idx = (np.argmax if op == OP_MAX else np.argmin)(v, axis=d) if v.ndim else \
            np.zeros((), np.int64)
        if keepdim and v.ndim:
            idx = np.expand_dims(idx, d)
        return _MinMax(values, _make_np(np.asarray(idx, np.int64)))

    def max(self, dim=None, keepdim=False):
        return self._extremum(OP_MAX, dim, keepdim, "max")

    def min(self, dim=None, keepdim=False):
        return self._extremum(OP_MIN, dim, keepdim, "min")

    def amax(self, dim=None, keepdim=False):
        return _reduce(OP_MAX, self, dim, keepdim, "AmaxBackward0")

    def amin(self, dim=None, keepdim=False):
        return _reduce(OP_MIN, self, dim, keepdim, "AminBackward0")

    def argmax(self, dim=None, keepdim=False):
        v = self._value()
        r = np.argmax(v) if dim is None else np.argmax(v, axis=_dim(dim, v.ndim))
        if keepdim and dim is not None:
            r = np.expand_dims(r, _dim(dim, v.ndim))
        return _make_np(np.asarray(r, np.int64))

    def gather(self, dim, index):
        """out[i][j][k] = self[index[i][j][k]][j][k] (dim 0; likewise for the others): a
        gather of self's flat elements, its gradient added back to where each came from."""
        index = _tensor_of(index)
        if index._dt.is_floating_point or index._dt.is_bool:
            raise RuntimeError("gather(): Expected dtype int64 for index")
        nd = max(len(self._shape), 1)
        d = _dim(dim, nd, "gather")
        ix = np.asarray(index._value(), np.int64)
        shape = self._shape or (1,)
        ix = ix.reshape(ix.shape or (1,))
        if ix.ndim != len(shape):
            raise RuntimeError("Index tensor must have the same number of dimensions as input "
                               "tensor")
        for k in range(ix.ndim):
            if k != d and ix.shape[k] > shape[k]:
                raise RuntimeError(f"Size does not match at dimension {k} expected index "
                                   f"{list(ix.shape)} to be smaller than self {list(shape)} "
                                   f"apart from dimension {d}")
        if ix.size and (ix.min() < -shape[d] or ix.max() >= shape[d]):
            raise RuntimeError(f"index {int(ix.max() if ix.max() >= shape[d] else ix.min())} "
                               f"is out of bounds for dimension {d} with size {shape[d]}")
        grid = list(np.indices(ix.shape, sparse=True))
        grid[d] = ix % shape[d]
        flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*grid)), shape)
        x = self.reshape(-1)
        return _named(x[_make_np(flat.reshape(-1), D.int64)].reshape(ix.shape),
                      "GatherBackward0")

    def take_along_dim(self, indices, dim=None):
        if dim is None:
            return self.reshape(-1).gather(0, _tensor_of(indices).reshape(-1))
        return self.gather(dim, indices)

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) along dim; the values are a gather of self (differentiable).
        NaN sorts last (first when descending), as torch."""
        v = np.asarray(self._value())
        if not self._shape:
            return _Sorted(self.clone(), _make_np(np.zeros((), np.int64), D.int64))
        d = _dim(dim, v.ndim, "sort")
        key = -v if descending and not self._dt.is_bool else v
        if descending and self._dt.is_floating_point:     # NaN first: as the largest
            key = np.where(np.isnan(v), -np.inf, key)
        idx = np.argsort(key, axis=d, kind="stable")
        if descending and self._dt.is_floating_point:
            nan_first = np.argsort(~np.isnan(np.take_along_axis(v, idx, d)), axis=d,
                                   kind="stable")
            idx = np.take_along_axis(idx, nan_first, d)
        it = _make_np(idx.astype(np.int64), D.int64)
        if not self._dt.is_floating_point:
            return _Sorted(_make_np(np.take_along_axis(v, idx, d), self._dt), it)
        return _Sorted(_named(self.gather(d, it), "SortBackward0"), it)

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable)[1]

    def topk(self, k, dim=-1, largest=True, sorted=True):
        d = _dim(dim, max(len(self._shape), 1), "topk")
        n = self._shape[d] if self._shape else 1
        if not 0 <= k <= n:
            raise RuntimeError("selected index k out of range")
        values, indices = self.sort(d, descending=largest)
        sl = (slice(None),) * d + (slice(0, k),)
        it = _make_np(np.ascontiguousarray(np.asarray(indices._value())[sl]), D.int64)
        vals = self.gather(d, it) if self._dt.is_floating_point else values[sl]
        return _TopK(_named(vals, "TopkBackward0"), it)

    def argmin(self, dim=None, keepdim=False):
        v = self._value()
        r = np.argmin(v) if dim is None else np.argmin(v, axis=_dim(dim, v.ndim))
        return _make_np(np.asarray(r, np.int64))

    def all(self, dim=None):
        v = self._value()
        return _make_np(np.asarray(np.all(v) if dim is None else np.all(v, axis=dim)))

    def any(self, dim=None):
        v = self._value()
        return _make_np(np.asarray(np.any(v) if dim is None else np.any(v, axis=dim)))

    # ---- comparisons (never differentiable) ----
    def _compare(self, o, fn):
        if isinstance(o, Tensor):
            _broadcast(self._shape, o._shape, fn.__name__)
        if TAPE.rec is None:
            b = o._value() if isinstance(o, Tensor) else o
            return _make_np(np.asarray(fn(self._value(), b)), D.bool_)
        from .compile import CMP_CODES, Quiet
        with Quiet():                           # the result carries its sources instead
            b = o._value() if isinstance(o, Tensor) else o
            r = _make_np(np.asarray(fn(self._value(), b)), D.bool_)
        if self._slot >= 0 and (not isinstance(o, Tensor) or o._slot >= 0 and
                                _prod(o._shape) == 1) and _prod(self._shape) == 1:
            bv = float(np.asarray(b, self._dt.np)) if not isinstance(o, Tensor) else 0.0
            r._src = (CMP_CODES[fn], self._slot, o._slot if isinstance(o, Tensor) else -1, bv,
                      self._dt)
        else:       # any use of the result guards the values compared
            r._src = (None, self._slot, o._slot if isinstance(o, Tensor) else -1, 0.0, None)
        return r

    def __eq__(self, o):
        return self._compare(o, np.equal)

    def __ne__(self, o):
        return self._compare(o, np.not_equal)

    def __lt__(self, o):
        return self._compare(o, np.less)

    def __le__(self, o):
        return self._compare(o, np.less_equal)

    def __gt__(self, o):
        return self._compare(o, np.greater)

    def __ge__(self, o):
        return self._compare(o, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __invert__(self):
        if not self._dt.is_bool:
            return _make_np(np.invert(self._value()), self._dt)
        return _make_np(~self._value(), D.bool_)

    def __and__(self, o):
        return _make_np(np.asarray(self._value() & (o._value() if isinstance(o, Tensor) else o)))

    def __or__(self, o):
        return _make_np(np.asarray(self._value() | (o._value() if isinstance(o, Tensor) else o)))

    def equal(self, o):
        return self._shape == o._shape and bool(np.array_equal(self._value(), o._value()))

    def allclose(self, o, rtol=1e-05, atol=1e-08, equal_nan=False):
        return bool(np.allclose(self._value(), o._value() if isinstance(o, Tensor) else o,
                                rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self):
        return _make_np(np.isnan(self._value()))

    def isinf(self):
        return _make_np(np.isinf(self._value()))

    def isposinf(self):
        return _make_np(np.isposinf(self._value()))

    def isneginf(self):
        return _make_np(np.isneginf(self._value()))

    def isfinite(self):
        return _make_np(np.isfinite(self._value()))

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        """NaN, +inf and -inf replaced (by 0, the dtype's largest and lowest value); the
        gradient passes where the value was finite, as torch."""
        if not self._dt.is_floating_point:
            return self.clone()
        big = float(np.finfo(self._dt.np).max)
        v = self._value()
        out = where(tensor(np.isnan(v)), float(nan), self)
        out = where(tensor(np.isposinf(v)), big if posinf is None else float(posinf), out)
        out = where(tensor(np.isneginf(v)), -big if neginf is None else float(neginf), out)
        return _named(out, "NanToNumBackward0")

    def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
        return self.copy_(self.nan_to_num(nan, posinf, neginf))

    # ---- shapes ----
    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], D.dtype):
            raise NotImplementedError("view(dtype) is not supported")
        return _alias(self, _infer_shape(shape, self.numel(), "view"), "ViewBackward0")

    def reshape(self, *shape):
        return _alias(self, _infer_shape(shape, self.numel(), "reshape"), "ViewBackward0")

    def view_as(self, other):
        return self.view(other._shape)

    def reshape_as(self, other):
        return self.reshape(other._shape)

    def contiguous(self, memory_format=None):
        return self

    def flatten(self, start_dim=0, end_dim=-1):
        s = self._shape
        if not s:
            return self.reshape(1)
        a, b = _dim(start_dim, len(s), "flatten"), _dim(end_dim, len(s), "flatten")
        if a > b:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        return _alias(self, s[:a] + (_prod(s[a:b + 1]),) + s[b + 1:], "ViewBackward0")

    def unsqueeze(self, dim):
        d = _dim(dim, len(self._shape) + 1, "unsqueeze")
        return _alias(self, self._shape[:d] + (1,) + self._shape[d:], "UnsqueezeBackward0")

    def squeeze(self, dim=None):
        s = self._shape
        if dim is None:
            return _alias(self, tuple(d for d in s if d != 1), "SqueezeBackward0")
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {_dim(d, len(s), "squeeze") for d in dims}
        return _alias(self, tuple(d for i, d in enumerate(s) if not (i in dims and d == 1)),
                      "SqueezeBackward1")

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        nd = len(self._shape)
        dims = [_dim(d, nd, "permute") for d in dims]
        if sorted(dims) != list(range(nd)):
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input "
                               f"does not match the length of the desired ordering of dimensions "
                               f"i.e. input.dim() = {nd} is not equal to len(dims) = {len(dims)}")
        if dims == list(range(nd)):
            return _alias(self, self._shape, "PermuteBackward0")
        if self._slot < 0:
            return _make_np(np.ascontiguousarray(np.transpose(self._np, dims)), self._dt)
        st = _contiguous_strides(self._shape)
        return _strided(self, [self._shape[d] for d in dims], [st[d] for d in dims], 0,
                        "PermuteBackward0")

    def transpose(self, dim0, dim1):
        nd = len(self._shape)
        if nd == 0:
            return self
        perm = list(range(nd))
        a, b = _dim(dim0, nd, "transpose"), _dim(dim1, nd, "transpose")
        perm[a], perm[b] = perm[b], perm[a]
        r = self.permute(perm)
        if r._fn is not None:
            r._fn = "TransposeBackward0"
        return r

    swapaxes = transpose

    def t(self):
        if len(self._shape) > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{len(self._shape)}D")
        if len(self._shape) < 2:
            return _alias(self, self._shape, "TBackward0")     # a view, as in PyTorch
        if self._slot >= 0:         # transpose(0, 1) without its checks (nn.Linear's path)
            rows, cols = self._shape
            return _strided(self, (cols, rows), (1, cols), 0, "TBackward0")
        r = self.transpose(0, 1)
        if r._fn is not None:
            r._fn = "TBackward0"
        return r

    @property
    def T(self):
        return self.permute(list(range(len(self._shape)))[::-1])

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def expand(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, Size)):
            sizes = tuple(sizes[0])
        s = self._shape
        if len(sizes) < len(s):
            raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                               f"greater or equal to the number of dimensions in the tensor "
                               f"({len(s)})")
        pad = (1,) * (len(sizes) - len(s)) + s
        st = _contiguous_strides(pad)
        out, strides = [], []
        for i, (have, want) in enumerate(zip(pad, sizes)):
            want = have if want == -1 else want
            if have != want and have != 1:
                raise RuntimeError(f"The expanded size of the tensor ({want}) must match the "
                                   f"existing size ({have}) at non-singleton dimension {i}.  "
                                   f"Target sizes: {list(sizes)}.  Tensor sizes: {list(s)}")
            out.append(want)
            strides.append(st[i] if have == want else 0)
        if tuple(out) == s:
            return _alias(self, s, "ExpandBackward0")
        if self._slot < 0:
            return _make_np(np.ascontiguousarray(np.broadcast_to(self._np, out)), self._dt)
        return _strided(self, out, strides, 0, "ExpandBackward0")

    def expand_as(self, other):
        return self.expand(other._shape)

    def broadcast_to(self, size):
        return self.expand(size)

    def narrow(self, dim, start, length):
        d = _dim(dim, len(self._shape), "narrow")
        n = self._shape[d]
        start = start + n if start < 0 else start
        if not 0 <= start <= n or length < 0 or start + length > n:
            raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                               f"({n}).")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def split(self, split_size, dim=0):
        d = _dim(dim, len(self._shape), "split")
        n = self._shape[d]
        if isinstance(split_size, (list, tuple)):
            sizes = [int(k) for k in split_size]
            if sum(sizes) != n or any(k < 0 for k in sizes):
                raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                                   f"(input tensor's size at dimension {d}), but got "
                                   f"split_sizes={sizes}")
        else:
            if split_size <= 0 and n:
                raise RuntimeError(f"split expects split_size be non-negative, but got "
                                   f"split_size={split_size}")
            sizes = [min(split_size, n - k) for k in range(0, n, split_size)] if n else [0]
        out, at = [], 0
        for k in sizes:
            out.append(self.narrow(d, at, k))
            at += k
        return tuple(out)

    def chunk(self, chunks, dim=0):
        if chunks <= 0:
            raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
        n = self._shape[_dim(dim, len(self._shape), "chunk")]
        return self.split(max(1, -(-n // chunks)), dim)

    def index_select(self, dim, index):
        index = _tensor_of(index)
        if index.dim() > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        if index._dt.is_floating_point or index._dt.is_bool:
            raise RuntimeError(f"index_select(): Expected dtype int32/int64 for index but got: "
                               f"{index._dt.name}")
        d = _dim(dim, len(self._shape), "index_select")
        idx = index.reshape(-1)
        if d == 0:
            return _named(self[idx], "IndexSelectBackward0")
        return _named(self.transpose(0, d)[idx].transpose(0, d), "IndexSelectBackward0")

    def outer(self, vec2):
        if self.dim() != 1 or vec2.dim() != 1:
            raise RuntimeError(f"outer: expected 1-D tensors, but got {self.dim()}-D and "
                               f"{vec2.dim()}-D")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    ger = outer

    def bmm(self, mat2):
        if self.dim() != 3:
            raise RuntimeError("batch1 must be a 3D tensor")
        if mat2.dim() != 3:
            raise RuntimeError("batch2 must be a 3D tensor")
        b, n, k = self._shape
        if tuple(mat2.shape[:2]) != (b, k):
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                               f"[{b}, {k}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
        return self.matmul(mat2)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        """beta * self + alpha * (mat1 @ mat2)."""
        if mat1.dim() != 2 or mat2.dim() != 2:
            raise RuntimeError(f"addmm: expected 2-D matrices, got {mat1.dim()}-D and "
                               f"{mat2.dim()}-D")
        prod = mat1.mm(mat2)
        prod = prod if alpha == 1 else alpha * prod
        out = prod if beta == 0 else (self if beta == 1 else beta * self) + prod
        return _named(out, "AddmmBackward0")

    def _tri(self, diagonal, lower):
        if self.dim() < 2:
            raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least "
                               f"2 dimensions")
        r, c = self._shape[-2:]
        keep = np.tri(r, c, diagonal, dtype=bool) if lower else ~np.tri(r, c, diagonal - 1,
                                                                          dtype=bool)
        zero = False if self._dt.is_bool else 0
        return _named(where(tensor(keep), self, zero), "TrilBackward0" if lower else
                      "TriuBackward0")

    def tril(self, diagonal=0):
        return self._tri(diagonal, True)

    def triu(self, diagonal=0):
        return self._tri(diagonal, False)

    def diag(self, diagonal=0):
        """A 1-D tensor's values on the diagonal of a square matrix, or a matrix's diagonal."""
        k = diagonal
        if self.dim() == 1:
            n = self._shape[0]
            from .factory import zeros
            m = n + abs(k)
            z = zeros((m, m), dtype=self._dt)
            if n:
                start = k if k >= 0 else -k * m
                flat = z.reshape(-1)
                flat[start:start + (m + 1) * (n - 1) + 1:m + 1] = self
                z = flat.reshape(m, m)
            return _named(z, "DiagEmbedBackward0")
        if self.dim() != 2:
            raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " + str(self.dim()) + "D")
        r, c = self._shape
        length = max(0, min(r, c - k) if k >= 0 else min(r + k, c))
        if not length:
            return self.reshape(-1)[:0]
        start = k if k >= 0 else -k * c
        return _named(self.reshape(-1)[start:start + (c + 1) * (length - 1) + 1:c + 1],
                      "DiagonalBackward0")

    def repeat(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        from . import cat
        x = self.reshape((1,) * (len(sizes) - self.dim()) + self._shape)
        for d, r in enumerate(sizes):
            if r != 1:
                x = cat([x] * r, dim=d)
        return x

    def __getitem__(self, idx):
        return _getitem(self, idx)

    def __setitem__(self, idx, value):
        _setitem(self, idx, value)

    # ---- conversion ----
    def to(self, *args, **kwargs):
        dt = kwargs.get("dtype")
        for a in args:
            if isinstance(a, D.dtype):
                dt = a
            elif isinstance(a, Tensor):
                dt = a._dt
        if dt is None or dt is self._dt:
            return self
        if dt.is_floating_point:
            return _as_float(self, dt)
        v = self._value()
        if v.dtype.kind == "f" and dt is not D.bool_:
            v = np.trunc(v)
        return _make_np(v.astype(dt.np), dt)

    def type(self, dtype=None):
        if dtype is None:
            return {D.float32: "torch.FloatTensor", D.float64: "torch.DoubleTensor",
                    D.int64: "torch.LongTensor", D.bool_: "torch.BoolTensor"}.get(
                        self._dt, f"torch.{self._dt.name}")
        return self.to(dtype)

    def float(self):
        return self.to(D.float32)

    def double(self):
        return self.to(D.float64)

    def long(self):
        return self.to(D.int64)

    def int(self):
        return self.to(D.int32)

    def bool(self):
        return self.to(D.bool_)

    def cpu(self):
        return self

    def cuda(self, *args, **kwargs):
        raise AssertionError("Torch not compiled with CUDA enabled")

    def clone(self, memory_format=None):
        if self._slot < 0:
            return _make_np(self._np.copy(), self._dt)
        rg = self._rg and _Mode.enabled
        return _record(OP_COPY, self._slot, NONE, self._shape, self._dt, rg, "CloneBackward0",
                       ga=rg)

    def new_zeros(self, *size, dtype=None):
        from . import zeros as _zeros
        return _zeros(*size, dtype=dtype or self._dt)

    def new_ones(self, *size, dtype=None):
        from . import ones as _ones
        return _ones(*size, dtype=dtype or self._dt)

    def new_tensor(self, data, dtype=None, requires_grad=False):
        return tensor(data, dtype=dtype or self._dt, requires_grad=requires_grad)

    # ---- in-place ----
    def _inplace_binary(self, op, o, fn):
        _check_inplace(self)
        if self._slot < 0:
            dt = _result_dtype(self, _tensor_of(o) if isinstance(o, (list, np.ndarray)) else o)
            if op == OP_DIV and not dt.is_floating_point:
                dt = D.get_default_dtype()
            _check_cast(dt, self._dt)
            r = _binary_numpy(op, self, o, dt, False)
            if r._shape != self._shape:
                raise RuntimeError(f"output with shape {list(self._shape)} doesn't match the "
                                   f"broadcast shape {list(r._shape)} ({OPS[op].name}_)")
            self._np[...] = r._np
            return self
        o_rg = isinstance(o, Tensor) and o._rg
        if _Mode.enabled and (self._rg or o_rg):
            # the backward may read self's value from before the write: give it a copy
            x = self.clone() if _binary_saves(op, self._rg, o_rg) & SAVE_A else self
            return self._assign(_binary(op, x, o, fn), fn)
        if isinstance(o, Tensor):
            ob = _as_float(o, self._dt)
            sb, shape_b = ob._slot, ob._shape
        else:
            sb, shape_b = TAPE.const(self._dt.code, o), ()
        out, aux = _broadcast(self._shape, shape_b, OPS[op].name)
        if out != self._shape:
            raise RuntimeError(f"output with shape {list(self._shape)} doesn't match the "
                               f"broadcast shape {list(out)} ({OPS[op].name}_)")
        TAPE.record(op, self._slot, sb, self._slot, self._shape, aux)
        _bump(self)
        return self

    def _assign(self, r, fn):
        """Write r into self's slot as one differentiable copy (in-place ops under autograd)."""
        if r._shape != self._shape:
            raise RuntimeError(f"output with shape {list(self._shape)} doesn't match the "
                               f"broadcast shape {list(r._shape)}")
        r = _as_float(r, self._dt)
        rg = r._rg
        rec = TAPE.record(OP_COPY, r._slot, NONE, self._slot, self._shape, -1,
                          (DIFF | GA) if rg else 0)
        _bump(self)
        if rg:
            _repoint(self, rec, fn)
        return self

    def __iadd__(self, o):
        return self._inplace_binary(OP_ADD, o, "AddBackward0")

    def __isub__(self, o):
        return self._inplace_binary(OP_SUB, o, "SubBackward0")

    def __imul__(self, o):
        return self._inplace_binary(OP_MUL, o, "MulBackward0")

    def __itruediv__(self, o):
        return self._inplace_binary(OP_DIV, o, "DivBackward0")

    def add_(self, o, alpha=1):
        return self._inplace_binary(OP_ADD, o if _is_one(alpha) else o * alpha, "AddBackward0")

    def sub_(self, o, alpha=1):
        return self._inplace_binary(OP_SUB, o if _is_one(alpha) else o * alpha, "SubBackward0")

    def mul_(self, o):
        return self._inplace_binary(OP_MUL, o, "MulBackward0")

    def div_(self, o):
        return self._inplace_binary(OP_DIV, o, "DivBackward0")

    def pow_(self, o):
        return self._inplace_binary(OP_POW, o, "PowBackward0")

    def _inplace_unary(self, op, fn, params=None):
        _check_inplace(self)
        if self._slot < 0:
            r = _unary(op, self, params=params)
            _check_cast(r._dt, self._dt)
            self._np[...] = r._value()
            return self
        if _Mode.enabled and self._rg:
            x = self.clone() if OPS[op].saves & SAVE_A else self
            return self._assign(_unary(op, x, fn, params), fn)
        aux = -1
        if params is not None:
            aux = -TAPE.const(self._dt.code, params[0]) - 1
            TAPE.const(self._dt.code, params[1])
        TAPE.record(op, self._slot, NONE, self._slot, self._shape, aux)
        _bump(self)
        return self

    def relu_(self):
        return self._inplace_unary(OP_RELU, "ReluBackward0")

    def sqrt_(self):
        return self._inplace_unary(OP_SQRT, "SqrtBackward0")

    def abs_(self):
        return self._inplace_unary(OP_ABS, "AbsBackward0")

    def log_(self):
        return self._inplace_unary(OP_LOG, "LogBackward0")

    def sin_(self):
        return self._inplace_unary(OP_SIN, "SinBackward0")

    def cos_(self):
        return self._inplace_unary(OP_COS, "CosBackward0")

    def clamp_min_(self, min):
        if isinstance(min, Tensor):
            return self._inplace_binary(OP_MAXIMUM, min, "ClampMinBackward1")
        return self._inplace_unary(OP_CLAMP, "ClampMinBackward0", (float(min), math.inf))

    def clamp_max_(self, max):
        if isinstance(max, Tensor):
            return self._inplace_binary(OP_MINIMUM, max, "ClampMaxBackward1")
        return self._inplace_unary(OP_CLAMP, "ClampMaxBackward0", (-math.inf, float(max)))

    def addcmul_(self, tensor1, tensor2, *, value=1):
        """self += value * tensor1 * tensor2 (Adam's and RMSprop's second moments)."""
        return self._inplace_binary(OP_ADD, _scaled(tensor1, value) * tensor2,
                                    "AddcmulBackward0")

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        """self += value * tensor1 / tensor2 (Adam's and RMSprop's parameter update)."""
        _check_addcdiv(tensor1, tensor2)
        return self._inplace_binary(OP_ADD, _scaled(tensor1, value) / tensor2,
                                    "AddcdivBackward0")

    def lerp_(self, end, weight):
        """self = self + weight * (end - self), as lerp (Adam's first moment)."""
        _check_lerp(self, end, weight)
        if not isinstance(weight, Tensor) and abs(weight) < 0.5:
            return self._inplace_binary(OP_ADD, weight * (end - self), "LerpBackward0")
        r = self.lerp(end, weight)
        if r._shape != self._shape:
            raise RuntimeError(f"output with shape {list(self._shape)} doesn't match the "
                               f"broadcast shape {list(r._shape)} (lerp_)")
        if _Mode.enabled and (self._rg or r._rg):
            _check_inplace(self)
            return self._assign(r, "LerpBackward0")
        return self.copy_(r)

    def clamp_(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        if any(isinstance(v, (float, np.floating)) for v in (min, max)):
            _check_cast(D.get_default_dtype(), self._dt)
        lo = -math.inf if min is None else float(min)
        hi = math.inf if max is None else float(max)
        return self._inplace_unary(OP_CLAMP, "ClampBackward1", (lo, hi))

    def neg_(self):
        return self._inplace_unary(OP_NEG, "NegBackward0")

    def exp_(self):
        return self._inplace_unary(OP_EXP, "ExpBackward0")

    def tanh_(self):
        return self._inplace_unary(OP_TANH, "TanhBackward0")

    def sigmoid_(self):
        return self._inplace_unary(OP_SIGMOID, "SigmoidBackward0")

    def log1p_(self):
        return self._inplace_unary(OP_LOG1P, "Log1PBackward0")

    def expm1_(self):
        return self._inplace_unary(OP_EXPM1, "Expm1Backward0")

    def sign_(self):
        return self._inplace_unary(OP_SIGN, "SignBackward0")

    def floor_(self):
        return self._inplace_unary(OP_FLOOR, "FloorBackward0")

    def ceil_(self):
        return self._inplace_unary(OP_CEIL, "CeilBackward0")

    def trunc_(self):
        return self._inplace_unary(OP_TRUNC, "TruncBackward0")

    def reciprocal_(self):
        return self._inplace_unary(OP_RECIPROCAL, "ReciprocalBackward0")

    def rsqrt_(self):
        return self._inplace_unary(OP_RSQRT, "RsqrtBackward0")

    def sinh_(self):
        return self._inplace_unary(OP_SINH, "SinhBackward0")

    def cosh_(self):
        return self._inplace_unary(OP_COSH, "CoshBackward0")

    def erf_(self):
        return self._inplace_unary(OP_ERF, "ErfBackward0")

    fix_ = trunc_

    def fill_(self, value):
        _check_inplace(self)
        if isinstance(value, Tensor) and value.dim():
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {value.dim()} dimensions.")
        if self._slot < 0:
            self._np[...] = value._value() if isinstance(value, Tensor) else value
            return self
        if isinstance(value, Tensor):
            value = value.item()
        TAPE.record(OP_FILL, NONE, NONE, self._slot, self._shape,
                    -TAPE.const(self._dt.code, value) - 1)
        _bump(self)
        if _Mode.enabled and self._rg and self._fn is not None:
            _repoint(self, TAPE.n - 1, "FillBackward0")
        return self

    def zero_(self):
        return self.fill_(0.0)

    def copy_(self, src, non_blocking=False):
        _check_inplace(self)
        src = _tensor_of(src)
        out, _ = _broadcast(self._shape, src._shape, "copy_")
        if out != self._shape:
            raise RuntimeError(f"output with shape {list(self._shape)} doesn't match the "
                               f"broadcast shape {list(out)} (copy_)")
        if self._slot < 0:
            self._np[...] = np.broadcast_to(src._value(), self._shape)
            return self
        if src._shape != self._shape:
            src = src.expand(self._shape)
        if _Mode.enabled and (self._rg or src._rg):
            return self._assign(src.clone() if src._dt is self._dt else src, "CopyBackwards")
        s = _as_float(src, self._dt)
        TAPE.record(OP_COPY, s._slot, NONE, self._slot, self._shape)
        _bump(self)
        return self

    def _write_now(self, values):
        """Overwrite the value from Python right away (random initialisers)."""
        _check_inplace(self)
        if TAPE.rec is not None:
            TAPE.rec.python_write("an in-place random initialiser")
        if self._slot < 0:
            self._np[...] = values
        else:
            TAPE.value(self._slot)[:] = np.asarray(values).reshape(-1)
            _bump(self)
        return self

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with samples of N(mean, std^2), in place: ``w.data.normal_(0, 0.01)``."""
        from .random import _rng
        _check_random(self, "normal_kernel_cpu")
        if not std >= 0.0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        return self._write_now(_rng(generator).normal(mean, std, self._shape))

    def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kwargs):
        """Fill with samples of U[from, to), in place (``from`` is also accepted by keyword)."""
        from .random import _rng
        from_ = kwargs.pop("from", from_)
        if kwargs:
            raise TypeError(f"uniform_() got an unexpected keyword argument "
                            f"'{next(iter(kwargs))}'")
        _check_random(self, "check_uniform_bounds")
        if from_ > to:
            raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                               f"from={from_} > to={to}")
        return self._write_now(_rng(generator).uniform(from_, to, self._shape))

    def exponential_(self, lambd=1.0, *, generator=None):
        from .random import _rng
        _check_random(self, "exponential_cpu")
        if not lambd > 0.0:
            raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
        return self._write_now(_rng(generator).exponential(1.0 / lambd, self._shape))


def _construct(cls, *args, **kwargs):
    """torch.Tensor(data) / torch.Tensor(*sizes): float32 data or uninitialised (zeroed)."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        t = tensor(args[0], dtype=D.get_default_dtype())
    else:
        t = _from_array(np.zeros(tuple(int(a) for a in args), D.get_default_dtype().np),
                        D.get_default_dtype())
    if cls is not Tensor:
        t2 = _make(t._slot, t._shape, t._dt, cls=cls)
        return t2
    return t


class _GradFn:
    """A grad_fn: only its class name carries meaning (as PyTorch's node names)."""

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {hex(id(self))}>"


def _grad_fn(name, rec=-1, epoch=-1):
    """The node of record rec: one object per record and name, with next_functions
    (tapegrad.autograd.graph)."""
    from .autograd.graph import node
    return node(name, rec, epoch)


class _Retained:
    """Marks a slot's .grad owner for retain_grad: the tensor and its pre-allocated .grad."""

    def __init__(self, t, g):
        import weakref
        self.ref = weakref.ref(t)
        self.grad = g

    def __call__(self):
        return self.ref()


def _infer_dtype(data):
    a = np.asarray(data)
    typed = isinstance(data, (np.ndarray, np.generic))     # NumPy scalars keep their dtype
    if a.dtype.kind == "f":
        return D.from_np(a.dtype) if typed else D.get_default_dtype()
    if a.dtype.kind == "b":
        return D.bool_
    if a.dtype.kind in "iu":
        return D.from_np(a.dtype) if typed else D.int64
    if a.dtype == object:
        raise TypeError(f"tensor(): could not infer a dtype for {type(data).__name__} data")
    return D.from_np(a.dtype)


def _flatten_data(data):
    if isinstance(data, Tensor):
        return data._value()
    if isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
        return np.array([_flatten_data(v) for v in data])
    return data


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays, tensors)."""
    if isinstance(data, Tensor):
        dt = dtype or data._dt
        v = data._value()
    else:
        data = _flatten_data(data)
        try:
            v = np.asarray(data)
        except ValueError as e:
            raise ValueError(f"tensor(): {e}") from None
        dt = dtype or _infer_dtype(data)
    if isinstance(dt, type) and issubclass(dt, (bool, int, float)):
        dt = {bool: D.bool_, int: D.int64, float: D.float64}[dt]
    if isinstance(dt, np.dtype) or isinstance(dt, type):
        dt = D.from_np(dt)
    return _from_array(v, dt, requires_grad)


from collections import namedtuple as _namedtuple  # noqa: E402

_Sorted = _namedtuple("sort", ["values", "indices"])
_TopK = _namedtuple("topk", ["values", "indices"])


def where(condition, input=None, other=None, *, out=None):
    """input where condition holds, other elsewhere, all three broadcast (input and other may
    be Python numbers). Exact: each element is copied from its side, never computed from both
    (an inf or NaN on the side not taken does not leak in), and the gradient reaches each side
    only where it was taken. where(condition) alone is nonzero(condition, as_tuple=True)."""
    if input is None and other is None:
        c = np.asarray(_tensor_of(condition)._value())
        return tuple(_make_np(i.astype(np.int64), D.int64) for i in np.nonzero(c))
    if input is None or other is None:
        raise TypeError("where() takes 1 or 3 positional arguments")
    c = _tensor_of(condition)
    if not c._dt.is_bool:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {c._dt.name.capitalize()}")
    if isinstance(input, Tensor):
        dt = _result_dtype(input, other)
    elif isinstance(other, Tensor):
        dt = _result_dtype(other, input)
    else:
        dt = _result_dtype(tensor(input), other)
    x, y = _tensor_of(input, dt), _tensor_of(other, dt)
    shape, _ = _broadcast(x._shape, y._shape, "where")
    shape, _ = _broadcast(c._shape, shape, "where")
    take = np.broadcast_to(np.asarray(c._value(), bool), shape).reshape(-1)
    if not dt.is_floating_point:
        return _make_np(np.where(take, np.broadcast_to(x._value(), shape).reshape(-1),
                                 np.broadcast_to(y._value(), shape).reshape(-1)).astype(dt.np)
                        .reshape(shape), dt)
    x, y = _as_float(x, dt).expand(shape), _as_float(y, dt).expand(shape)
    n = _prod(shape)
    both = cat([x.reshape(-1), y.reshape(-1)])
    pick = np.arange(n, dtype=np.int64) + n * (~take)
    return _named(both[_make_np(pick, D.int64)].reshape(shape), "WhereBackward0")


def cat(tensors, dim=0, *, out=None):
    """Concatenate along an existing dim: one region-copy record per input."""
    ts = [_tensor_of(t) for t in tensors]
    if not ts:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    parts = [t for t in ts if t._shape != (0,)] or ts[:1]
    ref = parts[0]
    if not ref._shape:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    nd = len(ref._shape)
    d = _dim(dim, nd, "cat")
    dt = ref._dt
    for i, t in enumerate(parts):
        dt = _promote_pair(dt, t._dt)
        if len(t._shape) != nd or any(t._shape[k] != ref._shape[k] for k in range(nd) if k != d):
            raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected "
                               f"size {list(ref._shape)} but got size {list(t._shape)} for "
                               f"tensor number {i} in the list (cat).")
    out_shape = ref._shape[:d] + (sum(t._shape[d] for t in parts),) + ref._shape[d + 1:]
    if not dt.is_floating_point:
        return _make_np(np.concatenate([t._value().astype(dt.np) for t in parts], d), dt)
    s = TAPE.alloc(dt.code, _prod(out_shape))
    dst = _contiguous_strides(out_shape)
    pos, rg, rec = 0, False, -1
    for t in parts:
        tf = _as_float(t, dt)
        trg = tf._rg and _Mode.enabled
        aux = TAPE.add_meta([nd, *tf._shape, *dst, pos * dst[d], *_contiguous_strides(tf._shape)])
        flags = (DIFF | (GA if trg else 0) | (GB if rg else 0)) if (trg or rg) else 0
        rec = TAPE.record(OP_SETSTRIDED, tf._slot, NONE, s, out_shape, aux, flags)
        rg = rg or trg
        pos += tf._shape[d]
    return _make(s, out_shape, dt, rg, rec if rg else -1, "CatBackward0" if rg else None)


def stack(tensors, dim=0, *, out=None):
    ts = [_tensor_of(t) for t in tensors]
    if not ts:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(ts):
        if t._shape != ts[0]._shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(ts[0]._shape)} at entry 0 and {list(t._shape)} at entry "
                               f"{i}")
    d = _dim(dim, len(ts[0]._shape) + 1, "stack")
    r = cat([t.unsqueeze(d) for t in ts], d)
    if r._fn is not None:
        r._fn = "StackBackward0"
    return r
