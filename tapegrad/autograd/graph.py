"""Differentiable gradients (create_graph=True) and the graph's nodes (grad_fn.next_functions).

The reverse pass of ``create_graph`` takes its schedule from the compiled walk the normal pass
uses (``interpret.reverse_schedule``): the same records in the same order, the same zeroed and
retained slots, the same checks of freed records and version counters, the same records freed
without retain_graph. It then runs those rows in Python: each (P_BWD, record) row emits that
record's backward rule as ordinary tensor ops (``RULES``, one rule per opcode kind of
``ops.OPS``), so the gradients record on the tape with gradients of their own, and a host
record (autograd.Function) calls its Python backward with grad mode on.

A rule reads the values the normal pass reads (the saved inputs and output of the record), as
tensors standing for the slot's version at that record: the last record before it that wrote
the slot is their grad_fn, so a second backward goes on through the forward graph.
Non-differentiable factors (the masks of relu, clamp, maximum, the ties of max) are constants,
as the derivative of a step is zero.
"""
import bisect
import math
import weakref

import numpy as np

from .. import dtypes as D
from ..interpret import (CHECK, FREE, GRAPH_FREED, OK, P_ACC, P_BWD, P_HOST, P_ZERO,
                         reverse_schedule)
from ..ops import (DIFF, FREED, GA, GB, LAST_BINARY, LAST_REDUCE, LAST_UNARY, OPS, OP_ABS,
                   OP_ADD, OP_CAST, OP_CEIL, OP_CLAMP, OP_COPY, OP_COS, OP_COSH, OP_DIV, OP_ERF,
                   OP_EXP, OP_EXPM1, OP_FILL, OP_FLOOR, OP_HOST, OP_INDEX, OP_LOG, OP_LOG1P,
                   OP_MATMUL, OP_MAX, OP_MAXIMUM, OP_MEAN, OP_MIN, OP_MINIMUM, OP_MUL, OP_NEG,
                   OP_NORM, OP_POW, OP_RECIPROCAL, OP_RELU, OP_ROUND, OP_RSQRT, OP_SETSTRIDED,
                   OP_SIGMOID, OP_SIGN, OP_SIN, OP_SINH, OP_SOFTPLUS, OP_SQRT, OP_STRIDED, OP_SUB,
                   OP_SUM, OP_TANH, OP_TRUNC, SAVE_A, SAVE_B, SAVE_OUT)
from ..tape import NONE, TAPE
from ..tensor import Tensor, _bump, _from_array, _make, _prod, _record, _repoint

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward.")


def _dtype(s):
    return D.float32 if TAPE.key[s][0] == 0 else D.float64


def _const(arr, dt):
    return _from_array(np.ascontiguousarray(arr, dtype=dt.np), dt)


# ---- the pass ----
class _Pass:
    """One reverse pass with create_graph: the slots' gradients as flat tensors."""

    def __init__(self, n):
        self.R = TAPE.R[:n].copy()
        self.n = n
        self.writers = {}
        self.g = {}

    def last_writer(self, s, i):
        """The last record before i that wrote slot s, or -1."""
        w = self.writers.get(s)
        if w is None:
            w = self.writers[s] = np.flatnonzero(self.R[:, 3] == s).tolist()
        k = bisect.bisect_left(w, i)
        return w[k - 1] if k else -1

    def value(self, s, i, dt=None, shape=None, grad=True):
        """Slot s as record i reads it: a tensor (flat, or of `shape`) standing for that
        version, differentiable when `grad` (the record's flag for that input: it required
        grad): a leaf's slot is the leaf, another slot's grad_fn the last record before i that
        wrote it. (Slot ids are reused once no live record names them, so an older record
        writing s may belong to a former life of the slot: only the flag says whether s
        requires grad now.) An immediate is a Python float."""
        if s < 0:
            code = dt.code if dt is not None else 0
            return float(TAPE.C[code][-s - 1])
        sdt = _dtype(s)
        shape = (int(TAPE.size[s]),) if shape is None else tuple(shape)
        if not (grad and D.is_grad_enabled()):
            return _make(s, shape, sdt)
        if TAPE.leaf[s]:
            return _make(s, shape, sdt, True)
        j = self.last_writer(s, i)
        if j >= 0 and self.R[j, 5] & DIFF:
            return _make(s, shape, sdt, True, j, _node_name(j))
        return _make(s, shape, sdt)

    def numpy(self, s, dt):
        if s < 0:
            return np.array([TAPE.C[dt.code][-s - 1]], dt.np)
        return TAPE.value(s).copy()

    def add(self, s, t):
        """Add t (any shape of slot s's size) to the gradient of slot s."""
        if t is None:
            return
        if t._dt is not _dtype(s):
            t = t.to(_dtype(s))
        old = self.g.get(s)
        if old is not None and old._shape != t._shape:
            old, t = _flat(old), _flat(t)
        self.g[s] = t if old is None else old + t


def _flat(t):
    return t if len(t._shape) == 1 else t.reshape(-1)


def shaped(g, shape):
    """Gradient g with this shape: the tensor a flat view was made from when it has it."""
    shape = tuple(shape)
    if g._shape != shape and g._base is not None:
        b = g._base()
        if b is not None and b._shape == shape:
            return b
    return g if g._shape == shape else g.reshape(shape)


def _seed_tensor(t, gradient):
    from . import _seed
    if isinstance(gradient, Tensor):
        _seed(t, gradient)                          # the shape check and its message
        g = gradient if gradient._dt is t._dt else gradient.to(t._dt)
        if g._slot < 0:
            g = g.to(t._dt)
        return g.reshape(-1)
    g = _seed(t, gradient)
    arr = np.broadcast_to(np.asarray(g, t._dt.np), (t.numel(),))
    return _const(arr, t._dt)


def reverse(t, gradient, retain_graph, retain=None, grad_of=None):
    """Backpropagate from tensor t with gradients as tensors (create_graph). Returns
    {slot: flat gradient tensor} for the leaves reached and the slots of `retain` (or the
    tape's retained slots and the leaves that have a .grad, with `retain`/`grad_of` None)."""
    if not t._rg:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                           "grad_fn")
    if TAPE.rec is not None and TAPE.rec.impure is None:
        from ..compile import _where
        TAPE.rec.impure = (f"a backward with create_graph=True at {_where()} (its reverse pass "
                           f"runs in Python, where the recording cannot follow it)")
    seed = _seed_tensor(t, gradient)
    TAPE.flush()
    TAPE._sync()
    rec = t._rec
    if rec >= 0 and t._epoch != TAPE.epoch:
        rec = -2
    elif 0 <= rec < TAPE.n - 1:
        rec = TAPE.last_write(t._slot, rec)
    retain = TAPE.retain if retain is None else retain
    grad_of = TAPE.grad_of if grad_of is None else grad_of
    mode = CHECK | (0 if retain_graph else FREE)
    status, bad, n_freed, P, reached = reverse_schedule(
        TAPE.R, rec, t._slot, TAPE.M, TAPE.vid, TAPE.leaf, retain, grad_of, TAPE.ver,
        TAPE.needs, mode)
    TAPE.n_live -= n_freed
    if status != OK:
        if status == GRAPH_FREED:
            raise RuntimeError(_FREED_MSG)
        op = OPS[int(TAPE.R[bad, 0])]
        raise RuntimeError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: the input of {op.grad_fn} (record {bad}) is at a newer version "
            "than when it was saved. Hint: the operation that failed to compute its gradient is "
            "the in-place one that modified it.")
    ps = _Pass(TAPE.n)
    ps.add(t._slot, seed)
    found = {}
    TAPE.busy += 1
    try:
        with D.enable_grad():
            for row in P.tolist():
                kind, p1, p2 = row[0], row[1], row[2]
                if kind == P_BWD:
                    _backward_record(ps, p1)
                elif kind == P_ZERO:
                    ps.g.pop(p1, None)
                elif kind == P_ACC:
                    gs = ps.g.get(p1)
                    if gs is not None:
                        old = found.get(p1)
                        found[p1] = gs if old is None else old + gs
                elif kind == P_HOST:
                    _host(ps, p1)
        for s in reached.tolist():
            if s < 0:
                break
            gs = ps.g.get(s)
            if gs is not None:
                old = found.get(s)
                found[s] = gs if old is None else old + gs
    finally:
        TAPE.busy -= 1
    TAPE.flush()
    TAPE.reached(np.array([-1], np.int64))
    return found


def _backward_record(ps, i):
    op, a, b, out, aux, flags = (int(v) for v in ps.R[i, :6])
    g = ps.g.get(out)
    if op == OP_SETSTRIDED:
        _setstrided(ps, i, a, out, aux, flags, None if g is None else _flat(g))
        return
    ps.g.pop(out, None)
    if g is None:
        return
    if op <= LAST_UNARY:
        ps.add(a, _unary(ps, i, op, a, out, aux, g))
    elif op <= LAST_BINARY:
        ga, gb = _binary(ps, i, op, a, b, out, aux, flags, g)
        if flags & GA and a >= 0:
            ps.add(a, ga)
        if flags & GB and b >= 0:
            ps.add(b, gb)
    elif op <= LAST_REDUCE:
        ps.add(a, _reduce(ps, i, op, a, out, aux, g))
    elif op == OP_MATMUL:
        ga, gb = _matmul(ps, i, a, b, aux, flags, g)
        ps.add(a, ga)
        ps.add(b, gb)
    elif op == OP_STRIDED:
        ps.add(a, _strided(ps, a, aux, _flat(g)))
    elif op == OP_INDEX:
        M = TAPE.M
        count, inner = int(M[aux]), int(M[aux + 1])
        offs = M[aux + 2:aux + 2 + count].copy()
        ps.add(a, _scatter_add(_flat(g), offs, inner, int(TAPE.size[a])))
    elif op == OP_COPY:
        if flags & GA:
            ps.add(a, g)
    elif op == OP_CAST:
        if flags & GA:
            ps.add(a, g.to(_dtype(a)))
    elif op == OP_FILL:
        pass
    else:
        raise NotImplementedError(f"create_graph: no backward rule for opcode {OPS[op].name}")


# ---- rules, one per kind of OPS ----
def _sign_d(x, out, p, q):
    return x.sign()


def _zero_d(x, out, p, q):
    return None


# d out / d x as tensor ops of x (the saved input) and out (the saved output), written as the
# kernels' <op>_bwd rules are (the same operations in the same order: the same values)
UNARY_RULES = {
    OP_NEG: lambda x, out, p, q: -1.0,
    OP_ABS: _sign_d,
    OP_EXP: lambda x, out, p, q: out,
    OP_LOG: lambda x, out, p, q: 1.0 / x,
    OP_SQRT: lambda x, out, p, q: 0.5 / out,
    OP_SIN: lambda x, out, p, q: x.cos(),
    OP_COS: lambda x, out, p, q: -x.sin(),
    OP_TANH: lambda x, out, p, q: 1.0 - out * out,
    OP_SIGMOID: lambda x, out, p, q: out * (1.0 - out),
    OP_RELU: lambda x, out, p, q: _mask(out._value() > 0, out._dt),
    OP_ROUND: _zero_d,
    OP_LOG1P: lambda x, out, p, q: 1.0 / (1.0 + x),
    OP_EXPM1: lambda x, out, p, q: out + 1.0,
    OP_SIGN: _zero_d,
    OP_FLOOR: _zero_d,
    OP_CEIL: _zero_d,
    OP_TRUNC: _zero_d,
    OP_RECIPROCAL: lambda x, out, p, q: -out * out,
    OP_RSQRT: lambda x, out, p, q: -0.5 * out * out * out,
    OP_SINH: lambda x, out, p, q: x.cosh(),
    OP_COSH: lambda x, out, p, q: x.sinh(),
    OP_ERF: lambda x, out, p, q: 1.1283791670955126 * (-x * x).exp(),
    OP_SOFTPLUS: lambda x, out, p, q: _softplus_d(x, p, q),
    OP_CLAMP: lambda x, out, p, q: _mask((x._value() >= p) & (x._value() <= q), x._dt),
}


def _mask(m, dt):
    return _const(np.asarray(m, dt.np), dt)


def _softplus_d(x, beta, threshold):
    from ..tensor import where
    bx = beta * x
    return where(_const(bx._value() > threshold, D.bool_), 1.0, bx.sigmoid())


def _unary(ps, i, op, a, out, aux, g):
    saves = OPS[op].saves
    dt = g._dt
    x = ps.value(a, i, shape=g._shape) if saves & SAVE_A else None
    o = ps.value(out, i + 1, shape=g._shape) if saves & SAVE_OUT else None   # record i's
    p = q = 0.0
    if aux >= 0:
        p, q = float(TAPE.C[dt.code][aux]), float(TAPE.C[dt.code][aux + 1])
    d = UNARY_RULES[op](x, o, p, q)
    if d is None:
        return g * 0.0
    if isinstance(d, float):
        return -g if d == -1.0 else g * d
    return g * d


def _bcast_shapes(i, aux, na, nb, n):
    """(out shape, a's padded shape, b's padded shape) of a binary record."""
    if aux < 0:
        out = tuple(TAPE.shapes[i])
        if _prod(out) != n:
            out = (n,)
        one = (1,) * len(out)
        return out, out if na == n else one, out if nb == n else one
    M = TAPE.M
    nd = int(M[aux])
    out = [int(v) for v in M[aux + 1:aux + 1 + nd]]
    sta = M[aux + 1 + nd:aux + 1 + 2 * nd]
    stb = M[aux + 1 + 2 * nd:aux + 1 + 3 * nd]
    pa = tuple(out[d] if sta[d] != 0 else 1 for d in range(nd))
    pb = tuple(out[d] if stb[d] != 0 else 1 for d in range(nd))
    return tuple(out), pa, pb


def _unbroadcast(t, out, p):
    dims = tuple(d for d in range(len(out)) if p[d] == 1 and out[d] != 1)
    if dims:
        t = t.sum(dim=dims, keepdim=True)
    return t


def _binary(ps, i, op, a, b, out, aux, flags, g):
    dt = g._dt
    n = int(TAPE.size[out])
    na = int(TAPE.size[a]) if a >= 0 else 1
    nb = int(TAPE.size[b]) if b >= 0 else 1
    oshape, pa, pb = _bcast_shapes(i, aux, na, nb, n)
    ga_, gb_ = bool(flags & GA) and a >= 0, bool(flags & GB) and b >= 0
    saves = flags & (SAVE_A | SAVE_B)
    need_a = op in (OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM) and (
        saves & SAVE_A or a < 0)
    need_b = op in (OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM) and (
        saves & SAVE_B or b < 0)

    A = ps.value(a, i, dt, pa, ga_) if need_a else None
    B = ps.value(b, i, dt, pb, gb_) if need_b else None
    G = g.reshape(oshape)
    da = db = None
    if op == OP_ADD:
        da, db = G, G
    elif op == OP_SUB:
        da, db = G, -G
    elif op == OP_MUL:
        da = G * B if ga_ else None
        db = G * A if gb_ else None
    elif op == OP_DIV:
        da = G * (1.0 / B) if ga_ else None
        db = G * (-A / (B * B)) if gb_ else None
    elif op == OP_POW:
        da = G * _pow_base(A, B, dt) if ga_ else None
        db = G * _pow_exponent(A, B, dt) if gb_ else None
    else:
        av = ps.numpy(a, dt).reshape(pa)
        bv = ps.numpy(b, dt).reshape(pb)
        win = av > bv if op == OP_MAXIMUM else av < bv
        tie = av == bv
        if ga_:
            da = G * _mask(np.where(tie, 0.5, np.where(win, 1.0, 0.0)), dt)
        if gb_:
            db = G * _mask(np.where(tie, 0.5, np.where(win, 0.0, 1.0)), dt)
    ga = _unbroadcast(da, oshape, pa) if ga_ and da is not None else None
    gb = _unbroadcast(db, oshape, pb) if gb_ and db is not None else None
    return ga, gb


def _pow_base(A, B, dt):
    """b a^(b-1), zero where b == 0 (kernels.pow_bwd_base)."""
    from ..tensor import where
    if isinstance(B, float):
        return 0.0 if B == 0 else B * A ** (B - 1.0)
    r = B * A ** (B - 1.0)
    return where(_const(B._value() == 0, D.bool_), 0.0, r)


def _pow_exponent(A, B, dt):
    """a^b log(a), zero where a == 0 and b >= 0, NaN where a < 0 (kernels.pow_bwd_exponent)."""
    from ..tensor import where
    if isinstance(A, float):
        bv = B._value()
        if A < 0:
            return math.nan
        if A == 0:
            return _mask(np.where(bv >= 0, 0.0, (A ** bv) * -math.inf), dt)
        return (A ** B) * math.log(A)
    av = A._value()
    bv = B if isinstance(B, float) else B._value()
    safe = _mask(np.where(av > 0, 0.0, 1.0), dt)     # log of 1 where a <= 0 (masked below)
    r = A ** B * (A + safe).log()
    zero = np.broadcast_to((av == 0) & (np.asarray(bv) >= 0), r._shape)
    neg = np.broadcast_to(av < 0, r._shape)
    r = where(_const(zero, D.bool_), 0.0, r)
    return where(_const(neg, D.bool_), math.nan, r)


def _reduce(ps, i, op, a, out, aux, g):
    M = TAPE.M
    outer, n, inner, spread = (int(v) for v in M[aux:aux + 4])
    dt = g._dt
    G = g.reshape(outer, 1, inner)
    if op == OP_SUM:
        return G.expand(outer, n, inner).reshape(-1)
    if op == OP_MEAN:
        return (G / n).expand(outer, n, inner).reshape(-1)
    X = ps.value(a, i, shape=(outer, n, inner))
    O = ps.value(out, i + 1, shape=(outer, 1, inner))
    ov = O._value()
    if op == OP_NORM:
        zero = ov == 0
        r = (G * X) / (O + _mask(zero, dt))
        if zero.any():
            r = r * _mask(np.broadcast_to(~zero, (outer, n, inner)), dt)
        return r.reshape(-1)
    xv = X._value()
    hit = xv == ov
    if spread:
        ties = hit.sum(axis=1, keepdims=True)
        w = np.where(hit, 1.0, 0.0)
        return ((G / _mask(np.maximum(ties, 1), dt)) * _mask(w, dt)).reshape(-1)
    first = np.zeros(hit.shape, bool)
    k = hit.argmax(axis=1)
    any_ = hit.any(axis=1)
    oi, ii = np.nonzero(any_)
    first[oi, k[oi, ii], ii] = True
    return (G * _mask(first, dt)).reshape(-1)


def _batches(x, offs, rows, cols):
    """The matrices of a matmul operand at these offsets: (nb, rows, cols)."""
    nb, size = len(offs), rows * cols
    if list(offs) == [k * size for k in range(nb)] and int(TAPE.size[x._slot]) == nb * size:
        return x.reshape(nb, rows, cols)
    return _gather(x, [int(o) for o in offs], size).reshape(nb, rows, cols)


def _matmul(ps, i, a, b, aux, flags, g):
    M = TAPE.M
    nb, n, k, p = (int(v) for v in M[aux:aux + 4])
    offa = M[aux + 4:aux + 4 + nb].copy()
    offb = M[aux + 4 + nb:aux + 4 + 2 * nb].copy()
    G = g.reshape(nb, n, p)
    ga = gb = None
    if flags & GA:
        B = _batches(ps.value(b, i, grad=bool(flags & GB)), offb, k, p)
        ga = _scatter_add((G @ B.transpose(1, 2)).reshape(-1), offa, n * k, int(TAPE.size[a]))
    if flags & GB:
        A = _batches(ps.value(a, i, grad=bool(flags & GA)), offa, n, k)
        gb = _scatter_add((A.transpose(1, 2) @ G).reshape(-1), offb, k * p, int(TAPE.size[b]))
    return ga, gb


def _positions(shape, strides, base):
    pos = np.full(tuple(shape), base, np.int64)
    for d, (m, st) in enumerate(zip(shape, strides)):
        view = [1] * len(shape)
        view[d] = m
        pos = pos + np.arange(m, dtype=np.int64).reshape(view) * st
    return pos.reshape(-1)


def _strided_meta(aux):
    M = TAPE.M
    nd = int(M[aux])
    shape = [int(v) for v in M[aux + 1:aux + 1 + nd]]
    st = [int(v) for v in M[aux + 1 + nd:aux + 1 + 2 * nd]]
    return nd, shape, st, int(M[aux + 1 + 2 * nd])


def _strided(ps, a, aux, g):
    nd, shape, st, base = _strided_meta(aux)
    dims = tuple(d for d in range(nd) if st[d] == 0 and shape[d] > 1)
    if dims:                    # broadcast (expand) dimensions: their sum, then the rest
        g = g.reshape(shape).sum(dim=dims, keepdim=True)
        shape = [1 if d in dims else shape[d] for d in range(nd)]
    return _scatter_add(g.reshape(-1), _positions(shape, st, base), 1, int(TAPE.size[a]))


def _gather(x, offsets, inner):
    """One INDEX record: rows of `inner` elements of flat x at these element offsets."""
    aux = TAPE.add_meta([len(offsets), inner, *offsets])
    rg = x._rg and D.is_grad_enabled()
    return _record(OP_INDEX, x._slot, NONE, (len(offsets) * inner,), x._dt, rg,
                   "IndexBackward0", aux, 0, rg)


def _scatter_add(g, offsets, inner, size):
    """The flat tensor of `size` elements where row r of g (inner elements) is added at element
    offset offsets[r], in the order of r (the adjoint of a gather): gathers from g and a zero
    row, one for each multiplicity of a target row, summed."""
    offsets = np.asarray(offsets, np.int64)
    count = len(offsets)
    if count == 0 or inner == 0 or size == 0:
        return None
    if size % inner or (offsets % inner).any():
        offsets = (offsets[:, None] + np.arange(inner)).reshape(-1)
        inner = 1
        count = len(offsets)
    rows = offsets // inner
    nrow = size // inner
    if count == nrow and (rows == np.arange(nrow)).all():
        return g
    order = np.argsort(rows, kind="stable")
    sr = rows[order]
    start = np.searchsorted(sr, np.arange(nrow))
    mult = np.searchsorted(sr, np.arange(nrow), side="right") - start
    from ..factory import zeros
    from ..tensor import cat
    ext = cat([g.reshape(count, inner), zeros(1, inner, dtype=g._dt)]).reshape(-1)
    total = None
    for level in range(int(mult.max()) if nrow else 0):
        src = np.where(mult > level, order[np.minimum(start + level, count - 1)], count)
        part = _gather(ext, (src * inner).tolist(), inner)
        total = part if total is None else total + part
    return total


def _setstrided(ps, i, a, out, aux, flags, g):
    """D[region] = S (broadcast by its strides): S gets the region's gradient; the rest of D's
    gradient goes on to D's earlier version (GB), else the pass zeroes it."""
    if g is None:
        return
    nd, shape, dst, base = _strided_meta(aux)
    M = TAPE.M
    sst = [int(v) for v in M[aux + 2 + 2 * nd:aux + 2 + 3 * nd]]
    pd = _positions(shape, dst, base)
    if flags & GA and a >= 0:
        region = _gather(g, pd.tolist(), 1)
        dims = tuple(d for d in range(nd) if sst[d] == 0 and shape[d] > 1)
        sshape = shape
        if dims:
            region = region.reshape(shape).sum(dim=dims, keepdim=True).reshape(-1)
            sshape = [1 if d in dims else shape[d] for d in range(nd)]
        ps.add(a, _scatter_add(region, _positions(sshape, sst, 0), 1, int(TAPE.size[a])))
    if flags & GB:
        rest = g.clone()
        zaux = TAPE.add_meta([nd, *shape, *dst, base, *([0] * nd)])
        zero = TAPE.const(rest._dt.code, 0.0)
        rg = rest._rg
        rec = TAPE.record(OP_SETSTRIDED, zero, NONE, rest._slot, rest._shape, zaux,
                          (DIFF | GB) if rg else 0)
        _bump(rest)
        if rg:
            _repoint(rest, rec, "CopySlices")
        ps.g[out] = rest
    else:
        ps.g.pop(out, None)


def _host(ps, i):
    """A host record (autograd.Function): its Python backward, with grad mode on."""
    from .function import Function, checked_grads
    node = TAPE.hosts[int(TAPE.M[ps.R[i, 4]])]
    cls, ctx, name = node.cls, node.ctx, node.ctx._name
    from ..factory import zeros
    grads = []
    for o in node.outputs:
        if o is None:
            grads.append(None)
            continue
        s, shape, dt = o
        gs = ps.g.pop(s, None) if s >= 0 else None
        if gs is None:
            gs = zeros(shape, dtype=dt if dt.is_floating_point else D.get_default_dtype())
        else:
            gs = shaped(gs, shape)
        grads.append(gs)
    backward = cls.backward if cls.backward is not Function.backward else cls.vjp
    saved = ctx._saved
    outs = getattr(node, "saved_outputs", {})
    if saved and outs:          # a saved output is the output, with this record as grad_fn
        ctx._saved = tuple((_make(outs[id(t)], t._shape, t._dt, True, i, name)
                            if t is not None and id(t) in outs else t, v) for t, v in saved)
    try:
        r = backward(ctx, *grads)
    finally:
        if ctx._saved is not saved and not getattr(ctx, "_freed", False):
            ctx._saved = saved
    for a, g in checked_grads(name, node.args, node.needs, r):
        ps.add(a._slot, g)
    if TAPE.R[i, 5] & FREED:
        ctx._saved, ctx._freed = (), True
        node.args = ()


# ---- grad_fn nodes ----
class Node:
    """The grad_fn of a record: next_functions built from the record's inputs when asked."""

    def __init__(self, name, rec, epoch):
        self._name, self._rec, self._epoch = name, rec, epoch
        self.metadata = {}

    def name(self):
        return self._name

    def __repr__(self):
        return f"<{self._name} object at {hex(id(self))}>"

    @property
    def next_functions(self):
        if self._epoch != TAPE.epoch or self._rec < 0 or self._rec >= TAPE.n:
            return ()
        return tuple((nd, 0) for nd in _inputs(self._rec))

    def register_hook(self, fn):
        raise NotImplementedError("grad_fn hooks are not supported")


class AccumulateGrad:
    """The node of a leaf that requires grad (its .variable)."""

    def __init__(self, variable):
        self._variable = weakref.ref(variable) if variable is not None else lambda: None
        self.metadata = {}

    next_functions = ()

    @property
    def variable(self):
        return self._variable()

    def name(self):
        return "torch::autograd::AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"


_NODE_CLASSES = {}
_cache = {}
_cache_epoch = [-1]


def node(name, rec, epoch):
    """The grad_fn object of a tensor (one object per record and name, as torch's)."""
    if _cache_epoch[0] != TAPE.epoch:
        _cache.clear()
        _cache_epoch[0] = TAPE.epoch
    key = (rec, epoch, name)
    nd = _cache.get(key)
    if nd is None:
        cls = _NODE_CLASSES.get(name)
        if cls is None:
            from ..tensor import _GradFn
            cls = _NODE_CLASSES[name] = type(name, (Node, _GradFn), {})
        nd = cls(name, rec, epoch)
        if rec >= 0 and epoch == TAPE.epoch:
            _cache[key] = nd
    return nd


def _leaf_node(s):
    key = ("leaf", s)
    nd = _cache.get(key)
    r = TAPE.owners.get(s)
    t = r() if r is not None else None
    if nd is None or nd.variable is not t:
        nd = _cache[key] = AccumulateGrad(t)
    return nd


def _writer(s, i):
    TAPE._sync()
    hits = np.flatnonzero(TAPE.R[:i, 3] == s)
    return int(hits[-1]) if len(hits) else -1


def _is_assign(k):
    """A COPY record that is no node of torch's: it writes an in-place op's result into an
    existing tensor's slot (the tensor keeps the op's name), or it is the copy max and min hand
    out of their result. Its node is the record before it."""
    op, a, _, out = (int(v) for v in TAPE.R[k, :4])
    if op != OP_COPY or a < 0 or k == 0 or TAPE.off[a] == TAPE.off[out] or \
            _writer(a, k) != k - 1:
        return False
    return int(TAPE.R[k - 1, 0]) in (OP_MAX, OP_MIN) or bool((TAPE.R[:k, 1:4] == out).any())


def _node_of(s, i):
    """The node of slot s as record i reads it (None if it needs no gradient)."""
    if TAPE.leaf[s]:
        return _leaf_node(s)
    j = _writer(s, i)
    if j < 0 or not TAPE.R[j, 5] & DIFF:
        return None
    while _is_assign(j):
        j = j - 1
    return node(_node_name(j), j, TAPE.epoch)


def _inputs(i):
    TAPE._sync()
    op, a, b, out, aux, flags = (int(v) for v in TAPE.R[i, :6])
    while _is_assign(i):
        i -= 1
        op, a, b, out, aux, flags = (int(v) for v in TAPE.R[i, :6])
    if op == OP_HOST:
        hn = TAPE.hosts[int(TAPE.M[aux])]
        if hn is None:
            return ()
        return tuple(_node_of(x._slot, i) if isinstance(x, Tensor) and need else None
                     for x, need in zip(hn.args, hn.needs) if isinstance(x, Tensor))
    if op <= LAST_UNARY or op in (OP_STRIDED, OP_INDEX, OP_COPY, OP_CAST) or (
            LAST_BINARY < op <= LAST_REDUCE):
        return (_node_of(a, i) if flags & GA else None,)
    if op == OP_SETSTRIDED:
        return (_node_of(out, i) if flags & GB else None, _node_of(a, i) if flags & GA else None)
    if op == OP_FILL:
        return ()
    if (op == OP_POW and (a < 0 or b < 0)) or (op == OP_SUB and a < 0):
        # torch's nodes of a ** c, c ** b and c - b take the tensor alone
        s, bit = (b, GB) if a < 0 else (a, GA)
        return (_node_of(s, i) if flags & bit else None,)
    return (_node_of(a, i) if flags & GA and a >= 0 else None,
            _node_of(b, i) if flags & GB and b >= 0 else None)


def _node_name(j):
    """PyTorch's name for the node of record j (records no tensor names any more)."""
    op, a, b, out, aux = (int(v) for v in TAPE.R[j, :5])
    if op == OP_POW:
        return "PowBackward0" if b < 0 else "PowBackward2" if a < 0 else "PowBackward1"
    if op == OP_SUB and a < 0:
        return "RsubBackward1"
    if op in (OP_SUM, OP_MEAN):
        return OPS[op].grad_fn[:-1] + ("0" if TAPE.M[aux + 3] else "1")
    if op in (OP_MAX, OP_MIN):
        return OPS[op].grad_fn[:-1] + ("1" if TAPE.M[aux + 3] else "0")
    if op == OP_MATMUL:
        shape = TAPE.shapes[j] if j < len(TAPE.shapes) else ()
        nb = int(TAPE.M[aux])
        if len(shape) == 0:
            return "DotBackward0"
        if len(shape) == 1:
            return "MvBackward0" if int(TAPE.M[aux + 3]) == 1 else "SqueezeBackward4"
        if len(shape) == 2 and nb == 1:
            return "MmBackward0"
        return "BmmBackward0" if len(shape) == 3 else "MatmulBackward0"
    if op == OP_STRIDED:
        nd, shape, st, base = _strided_meta(aux)
        if any(v == 0 and m > 1 for v, m in zip(st, shape)):
            return "ExpandBackward0"
        if base == 0 and _prod(shape) == int(TAPE.size[a]):
            return "TBackward0" if nd == 2 else "PermuteBackward0"
        return "SliceBackward0"
    if op == OP_COPY and a >= 0 and TAPE.off[a] == TAPE.off[out]:
        return "ViewBackward0"
    if op == OP_HOST:
        hn = TAPE.hosts[int(TAPE.M[aux])]
        return hn.ctx._name if hn is not None else "BackwardCFunction"
    return OPS[op].grad_fn or "Backward"
