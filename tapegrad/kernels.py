"""Numba kernels: scalar ``<op>_fwd`` / ``<op>_bwd`` rules and the loops that apply them.

Arrays here are raveled 1-D views of the arena, or the arena itself with offsets (the elementwise
loops without broadcasting). Forward kernels assign into the output; backward kernels read the
output gradient, reset it to zero (the record is the definition of its output, so the gradient is
consumed) and accumulate (``+=``) into the input gradients.

The scalar rules are applied by a few shared loops (one per family) instead of one loop per op:
with Numba, each separately compiled loop costs about 0.15 s of first compile, and the loops are
the same for every elementwise op. The rules are small plain functions that LLVM inlines into
the loops; Numba's own IR inlining (inline="always") took a quarter longer to compile and ran
no faster.
"""
import math
from functools import partial

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .ops import (OP_ABS, OP_ADD, OP_CEIL, OP_COS, OP_COSH, OP_DIV, OP_ERF, OP_EXP, OP_EXPM1,
                  OP_FLOOR, OP_LOG, OP_LOG1P, OP_MAX, OP_MAXIMUM, OP_MEAN, OP_MIN, OP_MUL,
                  OP_NEG, OP_NORM, OP_POW, OP_RECIPROCAL, OP_RELU, OP_ROUND, OP_RSQRT,
                  OP_SIGMOID, OP_SIGN, OP_SIN, OP_SINH, OP_SOFTPLUS, OP_SQRT, OP_SUB, OP_SUM,
                  OP_TANH, OP_TRUNC)

# The options of every compiled function, set here once:
# - cache=True: Numba's on-disk cache, so only the first run after installing compiles;
# - error_model="numpy": float division by zero gives inf or nan, as in torch (Python's model
#   raises ZeroDivisionError, and its checks are code to compile in every function);
# - functions called only from compiled code get no CPython or C wrapper: Numba would build,
#   optimize and emit one for each (a sixth of the first compile).
ENTRY_OPTIONS = dict(cache=True, error_model="numpy", no_cfunc_wrapper=True)
INNER_OPTIONS = dict(ENTRY_OPTIONS, no_cpython_wrapper=True)
entry = partial(numba.njit, nogil=True, **ENTRY_OPTIONS)        # called from Python
jit = partial(numba.njit, nogil=True, **INNER_OPTIONS)
rule = partial(numba.njit, **INNER_OPTIONS)                      # scalar rules, small helpers
# loops whose sums may be reassociated (vectorized) and fused into multiply-adds
fast = partial(numba.njit, nogil=True, fastmath={"reassoc", "contract"}, **INNER_OPTIONS)
inline = partial(numba.njit, inline="always", **INNER_OPTIONS)   # typed into each caller


# ---- unary elementwise rules: <op>_fwd(x) and <op>_bwd(x, out) = d out / d x ----
@rule
def neg_fwd(x):
    return -x


@rule
def neg_bwd(x, out):
    return -1.0


@rule
def abs_fwd(x):
    return abs(x)


@rule
def abs_bwd(x, out):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)      # sign(x)


@rule
def exp_fwd(x):
    return math.exp(x)


@rule
def exp_bwd(x, out):
    return out                                             # d exp(x) = exp(x) dx


@rule
def log_fwd(x):
    if x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    return math.log(x)


@rule
def log_bwd(x, out):
    return 1.0 / x


@rule
def sqrt_fwd(x):
    return math.sqrt(x) if x >= 0 else math.nan


@rule
def sqrt_bwd(x, out):
    return 0.5 / out                                       # d sqrt(x) = dx / (2 sqrt(x))


@rule
def sin_fwd(x):
    return math.sin(x)


@rule
def sin_bwd(x, out):
    return math.cos(x)


@rule
def cos_fwd(x):
    return math.cos(x)


@rule
def cos_bwd(x, out):
    return -math.sin(x)


@rule
def tanh_fwd(x):
    return math.tanh(x)


@rule
def tanh_bwd(x, out):
    return 1.0 - out * out


@rule
def sigmoid_fwd(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@rule
def sigmoid_bwd(x, out):
    return out * (1.0 - out)


@rule
def relu_fwd(x):
    return x if (x > 0 or x != x) else 0.0      # NaN propagates, as torch


@rule
def relu_bwd(x, out):
    return 1.0 if out > 0 else 0.0


@rule
def round_fwd(x):
    return np.rint(x)                       # half to even, as torch.round (np.round's scalar
                                            # path compiles two more functions)


@rule
def round_bwd(x, out):
    return 0.0


@rule
def log1p_fwd(x):
    if x < -1.0:
        return math.nan
    if x == -1.0:
        return -math.inf
    return math.log1p(x)


@rule
def log1p_bwd(x, out):
    return 1.0 / (1.0 + x)


@rule
def expm1_fwd(x):
    return math.expm1(x)


@rule
def expm1_bwd(x, out):
    return out + 1.0                                       # d (exp(x) - 1) = exp(x) dx


@rule
def sign_fwd(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else x)        # 0 and NaN stay what they are


@rule
def sign_bwd(x, out):
    return 0.0


@rule
def floor_fwd(x):
    return np.floor(x)


@rule
def floor_bwd(x, out):
    return 0.0


@rule
def ceil_fwd(x):
    return np.ceil(x)


@rule
def ceil_bwd(x, out):
    return 0.0


@rule
def trunc_fwd(x):
    return np.trunc(x)


@rule
def trunc_bwd(x, out):
    return 0.0


@rule
def reciprocal_fwd(x):
    return 1.0 / x


@rule
def reciprocal_bwd(x, out):
    return -out * out                                      # d (1/x) = -dx / x^2


@rule
def rsqrt_fwd(x):
    if x < 0:
        return math.nan
    return 1.0 / math.sqrt(x)


@rule
def rsqrt_bwd(x, out):
    return -0.5 * out * out * out                          # d x^-1/2 = -x^-3/2 dx / 2


@rule
def sinh_fwd(x):
    return math.sinh(x)


@rule
def sinh_bwd(x, out):
    return math.cosh(x)


@rule
def cosh_fwd(x):
    return math.cosh(x)


@rule
def cosh_bwd(x, out):
    return math.sinh(x)


@rule
def erf_fwd(x):
    return math.erf(x)


@rule
def erf_bwd(x, out):
    return 1.1283791670955126 * math.exp(-x * x)           # 2 / sqrt(pi) exp(-x^2)


@rule
def softplus_fwd(x, beta, threshold):
    bx = beta * x
    if bx > threshold:                                     # linear above the threshold, as
        return x                                           # torch (threshold inf: never)
    if bx > 0:
        return (bx + math.log1p(math.exp(-bx))) / beta     # log(1 + e^bx) without overflow
    return math.log1p(math.exp(bx)) / beta


@rule
def softplus_bwd(x, beta, threshold):
    bx = beta * x
    if bx > threshold:
        return 1.0
    if bx >= 0:
        return 1.0 / (1.0 + math.exp(-bx))                 # sigmoid(beta x)
    e = math.exp(bx)
    return e / (1.0 + e)


@rule
def clamp_fwd(x, lo, hi):
    if x != x:
        return x
    y = lo if x < lo else x                                # min(max(x, lo), hi) without
    return hi if y > hi else y                             # compiling the builtins' overloads


@rule
def clamp_bwd(x, lo, hi):
    return 1.0 if lo <= x <= hi else 0.0                   # gradient passes inside [lo, hi]


@rule
def unary_fwd(op, x, p, q):
    if op == OP_NEG:
        return neg_fwd(x)
    elif op == OP_ABS:
        return abs_fwd(x)
    elif op == OP_EXP:
        return exp_fwd(x)
    elif op == OP_LOG:
        return log_fwd(x)
    elif op == OP_SQRT:
        return sqrt_fwd(x)
    elif op == OP_SIN:
        return sin_fwd(x)
    elif op == OP_COS:
        return cos_fwd(x)
    elif op == OP_TANH:
        return tanh_fwd(x)
    elif op == OP_SIGMOID:
        return sigmoid_fwd(x)
    elif op == OP_RELU:
        return relu_fwd(x)
    elif op == OP_ROUND:
        return round_fwd(x)
    elif op == OP_LOG1P:
        return log1p_fwd(x)
    elif op == OP_EXPM1:
        return expm1_fwd(x)
    elif op == OP_SIGN:
        return sign_fwd(x)
    elif op == OP_FLOOR:
        return floor_fwd(x)
    elif op == OP_CEIL:
        return ceil_fwd(x)
    elif op == OP_TRUNC:
        return trunc_fwd(x)
    elif op == OP_RECIPROCAL:
        return reciprocal_fwd(x)
    elif op == OP_RSQRT:
        return rsqrt_fwd(x)
    elif op == OP_SINH:
        return sinh_fwd(x)
    elif op == OP_COSH:
        return cosh_fwd(x)
    elif op == OP_ERF:
        return erf_fwd(x)
    elif op == OP_SOFTPLUS:
        return softplus_fwd(x, p, q)
    return clamp_fwd(x, p, q)


@rule
def unary_bwd(op, x, out, p, q):
    if op == OP_NEG:
        return neg_bwd(x, out)
    elif op == OP_ABS:
        return abs_bwd(x, out)
    elif op == OP_EXP:
        return exp_bwd(x, out)
    elif op == OP_LOG:
        return log_bwd(x, out)
    elif op == OP_SQRT:
        return sqrt_bwd(x, out)
    elif op == OP_SIN:
        return sin_bwd(x, out)
    elif op == OP_COS:
        return cos_bwd(x, out)
    elif op == OP_TANH:
        return tanh_bwd(x, out)
    elif op == OP_SIGMOID:
        return sigmoid_bwd(x, out)
    elif op == OP_RELU:
        return relu_bwd(x, out)
    elif op == OP_ROUND:
        return round_bwd(x, out)
    elif op == OP_LOG1P:
        return log1p_bwd(x, out)
    elif op == OP_EXPM1:
        return expm1_bwd(x, out)
    elif op == OP_SIGN:
        return sign_bwd(x, out)
    elif op == OP_FLOOR:
        return floor_bwd(x, out)
    elif op == OP_CEIL:
        return ceil_bwd(x, out)
    elif op == OP_TRUNC:
        return trunc_bwd(x, out)
    elif op == OP_RECIPROCAL:
        return reciprocal_bwd(x, out)
    elif op == OP_RSQRT:
        return rsqrt_bwd(x, out)
    elif op == OP_SINH:
        return sinh_bwd(x, out)
    elif op == OP_COSH:
        return cosh_bwd(x, out)
    elif op == OP_ERF:
        return erf_bwd(x, out)
    elif op == OP_SOFTPLUS:
        return softplus_bwd(x, p, q)
    return clamp_bwd(x, p, q)


# ---- binary elementwise rules: <op>_fwd(a, b) and <op>_bwd(a, b, out) = (d/da, d/db) ----
@rule
def add_fwd(a, b):
    return a + b


@rule
def add_bwd(a, b, out):
    return 1.0, 1.0


@rule
def sub_fwd(a, b):
    return a - b


@rule
def sub_bwd(a, b, out):
    return 1.0, -1.0


@rule
def mul_fwd(a, b):
    return a * b


@rule
def mul_bwd(a, b, out):
    return b * 1.0, a * 1.0


@rule
def div_fwd(a, b):
    return a / b                            # IEEE: x/0 = ±inf, 0/0 = nan (error_model numpy)


@rule
def div_bwd(a, b, out):
    return 1.0 / b, -a / (b * b * 1.0)                     # d(a/b) = da/b - a db/b^2


@rule
def pow_fwd(a, b):
    # torch's own cases for these exponents, with its values down to the sign of a zero or an
    # infinity: (-0.0) ** 0.5 is sqrt(-0.0) = -0.0 where pow gives 0.0
    if b == 2:
        return a * a
    if b == 3:
        return a * a * a
    if b == 0.5:
        return sqrt_fwd(a)
    if b == -0.5:
        return 1.0 / sqrt_fwd(a)
    if b == -1:
        return 1.0 / a
    if b == -2:
        return 1.0 / (a * a)
    if b == 1:
        return a
    return a ** b                           # IEEE pow: 0 ** -1 = inf, (-1) ** 0.5 = nan


@rule
def pow_bwd_base(a, b):
    """d a^b / da = b a^(b-1); zero where torch masks it (b == 0)."""
    return 0.0 if b == 0 else b * pow_fwd(a, b - 1.0)


@rule
def pow_bwd_exponent(a, b):
    """d a^b / db = a^b log(a); zero where torch masks it (a == 0 and b >= 0)."""
    if a == 0 and b >= 0:
        return 0.0
    if a < 0:
        return math.nan
    return pow_fwd(a, b) * math.log(a)


@rule
def pow_bwd(a, b, out):
    # the two halves are rules of their own: specialized code calls only the one it needs
    # (the exponent's costs a log per element)
    return pow_bwd_base(a, b), pow_bwd_exponent(a, b)


@rule
def maximum_fwd(a, b):
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@rule
def maximum_bwd(a, b, out):
    if a == b:
        return 0.5, 0.5                                    # ties split the gradient, as torch
    return (1.0, 0.0) if a > b else (0.0, 1.0)


@rule
def minimum_fwd(a, b):
    if a != a or b != b:
        return a + b
    return a if a <= b else b


@rule
def minimum_bwd(a, b, out):
    if a == b:
        return 0.5, 0.5
    return (1.0, 0.0) if a < b else (0.0, 1.0)


@rule
def binary_fwd(op, a, b):
    if op == OP_ADD:
        return add_fwd(a, b)
    elif op == OP_SUB:
        return sub_fwd(a, b)
    elif op == OP_MUL:
        return mul_fwd(a, b)
    elif op == OP_DIV:
        return div_fwd(a, b)
    elif op == OP_POW:
        return pow_fwd(a, b)
    elif op == OP_MAXIMUM:
        return maximum_fwd(a, b)
    return minimum_fwd(a, b)


@rule
def binary_bwd(op, a, b, out):
    if op == OP_ADD:
        return add_bwd(a, b, out)
    elif op == OP_SUB:
        return sub_bwd(a, b, out)
    elif op == OP_MUL:
        return mul_bwd(a, b, out)
    elif op == OP_DIV:
        return div_bwd(a, b, out)
    elif op == OP_POW:
        return pow_bwd(a, b, out)
    elif op == OP_MAXIMUM:
        return maximum_bwd(a, b, out)
    return minimum_bwd(a, b, out)


# ---- loops shared by the elementwise families ----
@inline
def _advance(idx, shape, s1, s2, i1, i2):
    """Step a row-major multi-index over `shape`, moving two strided positions along."""
    k = shape.size - 1
    while k >= 0:
        idx[k] += 1
        i1 += s1[k]
        i2 += s2[k]
        if idx[k] < shape[k]:
            break
        i1 -= s1[k] * shape[k]
        i2 -= s2[k] * shape[k]
        idx[k] = 0
        k -= 1
    return i1, i2


@inline
def _outer(shape, s1, s2):
    """The rows of a broadcast loop whose last dimension is a loop of its own: their count,
    and the shape and strides of the dimensions before the last."""
    nd = shape.size
    outer = 1
    for d in range(nd - 1):
        outer *= shape[d]
    return outer, shape[:nd - 1], s1[:nd - 1], s2[:nd - 1]


# The elementwise loops without broadcasting index the arenas by offset (a slice per operand
# costs more than the loop itself on small tensors). An operand is (array, offset, stride):
# a slot of the arena, or an immediate in C (stride 0), or a size-1 slot (stride 0).
@jit
def unary_loop_fwd(op, F, xo, oo, n, p, q):
    for i in range(n):
        F[oo + i] = unary_fwd(op, F[xo + i], p, q)


@jit
def unary_loop_bwd(op, F, G, xo, gx, oo, go, n, p, q):
    for i in range(n):
        g = G[go + i]
        G[go + i] = 0
        G[gx + i] += g * unary_bwd(op, F[xo + i], F[oo + i], p, q)


# From LONG_FLAT elements on, add, sub and mul run a loop of their own, on slices: the op is
# then no branch in the loop, which vectorizes (the loop through binary_fwd took 5.2 ms for a
# million float32 additions, NumPy 0.6 ms). Same rules, same order: the same values.
LONG_FLAT = 256


@jit
def _flat_fwd(op, XA, oa, sa, XB, ob, sb, F, oo, n):
    """binary_flat_fwd of add, sub or mul, one loop for each (the op a constant in it)."""
    o = F[oo:oo + n]
    if sa == 1 and sb == 1:
        a, b = XA[oa:oa + n], XB[ob:ob + n]
        if op == OP_ADD:
            for i in range(n):
                o[i] = add_fwd(a[i], b[i])
        elif op == OP_SUB:
            for i in range(n):
                o[i] = sub_fwd(a[i], b[i])
        else:
            for i in range(n):
                o[i] = mul_fwd(a[i], b[i])
    elif sa == 1:
        a, bv = XA[oa:oa + n], XB[ob]
        if op == OP_ADD:
            for i in range(n):
                o[i] = add_fwd(a[i], bv)
        elif op == OP_SUB:
            for i in range(n):
                o[i] = sub_fwd(a[i], bv)
        else:
            for i in range(n):
                o[i] = mul_fwd(a[i], bv)
    else:
        av, b = XA[oa], XB[ob:ob + n]
        if op == OP_ADD:
            for i in range(n):
                o[i] = add_fwd(av, b[i])
        elif op == OP_SUB:
            for i in range(n):
                o[i] = sub_fwd(av, b[i])
        else:
            for i in range(n):
                o[i] = mul_fwd(av, b[i])


@jit
def binary_flat_fwd(op, XA, oa, sa, XB, ob, sb, F, oo, n):
    if n >= LONG_FLAT and (op == OP_ADD or op == OP_SUB or op == OP_MUL) and (sa or sb):
        _flat_fwd(op, XA, oa, sa, XB, ob, sb, F, oo, n)
        return
    for i in range(n):
        F[oo + i] = binary_fwd(op, XA[oa + i * sa], XB[ob + i * sb])


@jit
def _flat_bwd(op, XA, oa, XB, ob, F, G, oo, go, gxa, gxb, n, ga, gb):
    """binary_flat_bwd of add, sub or mul with two full operands, one loop for each op (a
    million float32 elements: 7.7 ms through binary_bwd)."""
    a, b, o = XA[oa:oa + n], XB[ob:ob + n], F[oo:oo + n]
    gout, gA, gB = G[go:go + n], G[gxa:gxa + n], G[gxb:gxb + n]
    if op == OP_ADD:
        for i in range(n):
            g = gout[i]
            gout[i] = 0
            da, db = add_bwd(a[i], b[i], o[i])
            if ga:
                gA[i] += g * da
            if gb:
                gB[i] += g * db
    elif op == OP_SUB:
        for i in range(n):
            g = gout[i]
            gout[i] = 0
            da, db = sub_bwd(a[i], b[i], o[i])
            if ga:
                gA[i] += g * da
            if gb:
                gB[i] += g * db
    else:
        for i in range(n):
            g = gout[i]
            gout[i] = 0
            da, db = mul_bwd(a[i], b[i], o[i])
            if ga:
                gA[i] += g * da
            if gb:
                gB[i] += g * db


@jit
def binary_flat_bwd(op, XA, oa, sa, XB, ob, sb, F, G, oo, go, gxa, gxb, n, ga, gb):
    if n >= LONG_FLAT and sa == 1 and sb == 1 and (op == OP_ADD or op == OP_SUB or
                                                   op == OP_MUL):
        _flat_bwd(op, XA, oa, XB, ob, F, G, oo, go, gxa, gxb, n, ga, gb)
        return
    for i in range(n):
        g = G[go + i]
        G[go + i] = 0
        da, db = binary_bwd(op, XA[oa + i * sa], XB[ob + i * sb], F[oo + i])
        if ga:
            G[gxa + i * sa] += g * da           # stride 0: a size-1 operand sums
        if gb:
            G[gxb + i * sb] += g * db


@rule
def _bcast_meta(M, m):
    nd = M[m]
    return M[m + 1:m + 1 + nd], M[m + 1 + nd:m + 1 + 2 * nd], M[m + 1 + 2 * nd:m + 1 + 3 * nd]


@jit
def binary_loop_fwd(op, A, B, O, M, m):
    n = O.size
    if m < 0:                                   # no broadcasting but size-1 operands
        sa = 1 if A.size == n else 0
        sb = 1 if B.size == n else 0
        for i in range(n):
            O[i] = binary_fwd(op, A[i * sa], B[i * sb])
        return
    if n == 0:
        return
    shape, sa, sb = _bcast_meta(M, m)
    # the last dimension in a loop of its own, the others stepped once a row (a call of
    # _advance an element took 85 ns an element on (100000, 64) + (64,))
    last, la, lb = shape[-1], sa[-1], sb[-1]
    outer, so, sao, sbo = _outer(shape, sa, sb)
    idx = np.zeros(so.size, np.int64)
    ia = ib = np.int64(0)      # int64 from the start: a literal 0 compiles _advance again
    for r in range(outer):
        o = r * last
        for j in range(last):
            O[o + j] = binary_fwd(op, A[ia + j * la], B[ib + j * lb])
        ia, ib = _advance(idx, so, sao, sbo, ia, ib)


@jit
def binary_loop_bwd(op, A, B, O, GA, GB, GO, M, m, ga, gb):
    n = O.size
    if m < 0:
        sa = 1 if A.size == n else 0
        sb = 1 if B.size == n else 0
        for i in range(n):
            g = GO[i]
            GO[i] = 0
            da, db = binary_bwd(op, A[i * sa], B[i * sb], O[i])
            if ga:
                GA[i * sa] += g * da
            if gb:
                GB[i * sb] += g * db
        return
    if n == 0:
        return
    shape, sa, sb = _bcast_meta(M, m)
    last, la, lb = shape[-1], sa[-1], sb[-1]
    outer, so, sao, sbo = _outer(shape, sa, sb)
    idx = np.zeros(so.size, np.int64)
    ia = ib = np.int64(0)      # int64 from the start: a literal 0 compiles _advance again
    for r in range(outer):
        for j in range(last):
            o = r * last + j
            g = GO[o]
            GO[o] = 0
            pa, pb = ia + j * la, ib + j * lb
            da, db = binary_bwd(op, A[pa], B[pb], O[o])
            if ga:
                GA[pa] += g * da                # += over broadcast positions un-broadcasts
            if gb:
                GB[pb] += g * db
        ia, ib = _advance(idx, so, sao, sbo, ia, ib)


# ---- reductions: X viewed as (outer, n, inner), reduced over n ----
@jit
def reduce_fwd(op, X, O, M, m):
    outer, n, inner = M[m], M[m + 1], M[m + 2]
    for o in range(outer):
        for k in range(inner):
            base = o * n * inner + k
            if op == OP_MAX or op == OP_MIN:
                acc = X[base]
                for j in range(1, n):
                    v = X[base + j * inner]
                    if acc != acc:
                        break
                    if v != v or (v > acc if op == OP_MAX else v < acc):
                        acc = v
                O[o * inner + k] = acc
            else:
                s = 0.0
                for j in range(n):
                    v = X[base + j * inner]
                    s += v * v if op == OP_NORM else v
                if op == OP_MEAN:
                    s = s / n
                elif op == OP_NORM:
                    s = math.sqrt(s)
                O[o * inner + k] = s


@jit
def reduce_bwd(op, X, O, GX, GO, M, m):
    outer, n, inner, spread = M[m], M[m + 1], M[m + 2], M[m + 3]
    for o in range(outer):
        for k in range(inner):
            base = o * n * inner + k
            g = GO[o * inner + k]
            GO[o * inner + k] = 0
            out = O[o * inner + k]
            if op == OP_SUM:
                for j in range(n):
                    GX[base + j * inner] += g
            elif op == OP_MEAN:
                for j in range(n):
                    GX[base + j * inner] += g / n
            elif op == OP_NORM:                 # d |x| = x / |x| dx, 0 at |x| = 0
                if out != 0:
                    for j in range(n):
                        GX[base + j * inner] += g * X[base + j * inner] / out
            elif spread:                        # full max/min: ties share the gradient
                ties = 0
                for j in range(n):
                    if X[base + j * inner] == out:
                        ties += 1
                for j in range(n):
                    if X[base + j * inner] == out:
                        GX[base + j * inner] += g / ties
            else:                               # max/min over a dim: the first extremum
                for j in range(n):
                    if X[base + j * inner] == out:
                        GX[base + j * inner] += g
                        break


# ---- matmul: batches of (n, k) @ (k, p); batch offsets of A and B follow in M ----
# Up to SMALL_MATMUL multiply-adds a product runs in plain loops in a fixed order (the specialized
# code of tapegrad.codegen writes the same loops inline, bit for bit). Larger products run the
# loops below: each inner loop is unit-stride so it vectorizes, and the dot products of a
# single-column product (X @ w) sum in any order (fastmath reassoc/contract), as BLAS does.
SMALL_MATMUL = 1024
LINE = 64       # bytes in a cache line


@intrinsic
def prefetch(typingctx, X, i):
    """Ask the CPU to fetch the cache line of X[i] (a hint: no fault for any i, no result)."""
    if not isinstance(X, types.Array) or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]],
                                       wraparound=False)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read, keep in all cache levels, data
        builder.call(fn, [builder.bitcast(ptr, cgutils.voidptr_t), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(X, i), codegen


@fast
def dot_row(A, oa, B, ob, k):
    """A[oa:oa + k] . B[ob:ob + k], summed in any order (vectorized), in A's dtype."""
    a, b = A[oa:oa + k], B[ob:ob + k]
    s = A.dtype.type(0)
    for l in range(k):
        s += a[l] * b[l]
    return s


@fast
def axpy_row(Y, oy, g, X, ox, k):
    """Y[oy:oy + k] += g * X[ox:ox + k]."""
    y, x = Y[oy:oy + k], X[ox:ox + k]
    for l in range(k):
        y[l] += g * x[l]


# Four consecutive rows at a time, written as LLVM IR into the calling function. A kernel
# (a function of its own) is not inlined by LLVM once its loop is vectorized, and a call per
# row cost as much as the row's arithmetic: the single-column fused pass (tapegrad.codegen)
# took 8-9 ms a step of 1,000,000 x 32 with calls, 3.8-4.2 ms with these. Only these
# instructions carry the reassociation and contraction flags, so the caller's own arithmetic
# keeps its exact rounding. No bounds checks: the caller passes offsets of rows inside A, B,
# X and Y (the fused pass's rows of the arena).
FAST = ("reassoc", "contract")


def _row_pointers(context, builder, aryty, ary, off, k, count):
    data = context.make_array(aryty)(context, builder, ary).data
    first = builder.gep(data, [off])
    return [first] + [builder.gep(first, [builder.mul(k, k.type(r))]) for r in range(1, count)]


@intrinsic
def dot_rows4(typingctx, A, oa, B, ob, k):
    """(A[oa + r * k:oa + r * k + k] . B[ob:ob + k] for r in 0..3), each summed in any order, in
    A's dtype."""
    if not (isinstance(A, types.Array) and isinstance(B, types.Array) and A.dtype == B.dtype
            and all(isinstance(t, types.Integer) for t in (oa, ob, k))):
        return None
    sig = types.UniTuple(A.dtype, 4)(A, types.int64, B, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        ary, oa, bry, ob, k = args
        rows = _row_pointers(context, builder, sig.args[0], ary, oa, k, 4)
        w = _row_pointers(context, builder, sig.args[2], bry, ob, k, 1)[0]
        zero = context.get_value_type(sig.args[0].dtype)(0)
        sums = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        with cgutils.for_range(builder, k) as loop:
            wl = builder.load(builder.gep(w, [loop.index]))
            for row, s in zip(rows, sums):
                x = builder.load(builder.gep(row, [loop.index]))
                builder.store(builder.fadd(builder.load(s), builder.fmul(x, wl, flags=FAST),
                                           flags=FAST), s)
        return context.make_tuple(builder, sig.return_type, [builder.load(s) for s in sums])
    return sig, codegen


@intrinsic
def axpy_rows4(typingctx, Y, oy, g0, g1, g2, g3, X, ox, k):
    """Y[oy:oy + k] += (g0 x0 + g1 x1) + (g2 x2 + g3 x3), x_r = X[ox + r * k:ox + r * k + k]."""
    if not (isinstance(Y, types.Array) and isinstance(X, types.Array) and Y.dtype == X.dtype
            and all(isinstance(t, (types.Integer, types.Float)) for t in (g0, g1, g2, g3))
            and all(isinstance(t, types.Integer) for t in (oy, ox, k))):
        return None
    dt = Y.dtype
    sig = types.void(Y, types.int64, dt, dt, dt, dt, X, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        yry, oy, g0, g1, g2, g3, xry, ox, k = args
        y = _row_pointers(context, builder, sig.args[0], yry, oy, k, 1)[0]
        rows = _row_pointers(context, builder, sig.args[6], xry, ox, k, 4)
        with cgutils.for_range(builder, k) as loop:
            t = [builder.fmul(g, builder.load(builder.gep(row, [loop.index])), flags=FAST)
                 for g, row in zip((g0, g1, g2, g3), rows)]
            s = builder.fadd(builder.fadd(t[0], t[1], flags=FAST),
                             builder.fadd(t[2], t[3], flags=FAST), flags=FAST)
            p = builder.gep(y, [loop.index])
            builder.store(builder.fadd(builder.load(p), s, flags=FAST), p)
        return context.get_dummy_value()
    return sig, codegen


def _strip(R, add):
    """An intrinsic that writes, for rows r < R and columns c < p,

        Out[oo + r * os + c] (+)= sum over t < m of X[ox + t * xs + r * xr] * Y[oy + t * ys + c]

    as LLVM IR into the calling function: a register tile of R rows by two vectors of columns
    (64 bytes each, 16 float32) whose sums stay in registers for the whole of the t loop, X's
    value broadcast and multiplied into Y's row. Then the last columns, in one tile of each
    narrower width that fits (8, 4, 2, 1). The product's rows are a strip of A @ B (X = A,
    xs = 1, xr = k; Y = B, ys = p) and four columns of A^T G (X = A, xs = k, xr = 1; Y = G).
    The sums are in any order (the reassoc/contract flags, as BLAS does), only on these
    instructions. No bounds checks: the caller passes offsets inside the arrays."""
    @intrinsic
    def strip(typingctx, Out, oo, os, X, ox, xs, xr, Y, oy, ys, m, p):
        if not (all(isinstance(a, types.Array) for a in (Out, X, Y))
                and Out.dtype == X.dtype == Y.dtype and isinstance(Out.dtype, types.Float)
                and all(isinstance(v, types.Integer) for v in (oo, os, ox, xs, xr, oy, ys, m, p))):
            return None
        i64 = types.int64
        sig = types.void(Out, i64, i64, X, i64, i64, i64, Y, i64, i64, i64, i64)

        def codegen(context, builder, sig, args):
            Oa, oo, os, Xa, ox, xs, xr, Ya, oy, ys, m, p = args
            T = context.get_value_type(sig.args[0].dtype)
            size = context.get_abi_sizeof(T)
            V, I, i32 = LINE // size, oo.type, ir.IntType(32)

            def base(k, a, o):
                return builder.gep(context.make_array(sig.args[k])(context, builder, a).data, [o])
            o0, x0, y0 = base(0, Oa, oo), base(3, Xa, ox), base(7, Ya, oy)
            orow = [builder.gep(o0, [builder.mul(os, I(r))]) for r in range(R)]
            xrow = [builder.gep(x0, [builder.mul(xr, I(r))]) for r in range(R)]

            def tile(j, C, width):
                vt = ir.VectorType(T, width) if width > 1 else T

                def load(ptr):
                    return builder.load(builder.bitcast(ptr, vt.as_pointer()), align=size)

                zero = ir.Constant(vt, [0.0] * width if width > 1 else 0.0)
                acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(C)]
                       for _ in range(R)]
                with cgutils.for_range(builder, m) as loop:
                    t = loop.index
                    yt = builder.gep(y0, [builder.add(builder.mul(t, ys), j)])
                    yv = [load(builder.gep(yt, [I(c * width)])) for c in range(C)]
                    xt = builder.mul(t, xs)
                    for r in range(R):
                        xv = builder.load(builder.gep(xrow[r], [xt]))
                        if width > 1:
                            u = ir.Constant(vt, ir.Undefined)
                            xv = builder.shuffle_vector(
                                builder.insert_element(u, xv, i32(0)), u,
                                ir.Constant(ir.VectorType(i32, width), [0] * width))
                        for c in range(C):
                            a = acc[r][c]
                            builder.store(builder.fadd(builder.load(a), builder.fmul(
                                xv, yv[c], flags=FAST), flags=FAST), a)
                for r in range(R):
                    for c in range(C):
                        ptr = builder.gep(orow[r], [builder.add(j, I(c * width))])
                        v = builder.load(acc[r][c])
                        if add:
                            v = builder.fadd(load(ptr), v, flags=FAST)
                        builder.store(v, builder.bitcast(ptr, vt.as_pointer()), align=size)

            pairs = builder.sdiv(p, I(2 * V))
            with cgutils.for_range(builder, pairs) as c2:
                tile(builder.mul(c2.index, I(2 * V)), 2, V)
            j, w = builder.mul(pairs, I(2 * V)), V
            while w >= 1:
                has = builder.icmp_signed(">=", builder.sub(p, j), I(w))
                with builder.if_then(has):
                    tile(j, 1, w)
                j = builder.select(has, builder.add(j, I(w)), j)
                w //= 2
            return context.get_dummy_value()
        return sig, codegen
    return strip


mm_strip4, mm_strip1 = _strip(4, False), _strip(1, False)
mm_strip4_add, mm_strip1_add = _strip(4, True), _strip(1, True)
STRIP_MIN = 5       # columns (and k) from which the register tiles beat the loops below: on
                    # 1,000,000 x 32 with p = 2 or 4 they were 1-1.5x slower, with p = 8 to 64
                    # 1.4-3.5x faster (float32 and float64, one thread)
GB_BLOCK = 128      # rows of A and G a strip of A^T G sums at a time (kept in cache)


@fast
def mm_rows_fwd(A, B, O, oa, ob, oo, n, k, p):
    """O[oo:] (n, p) = A[oa:] (n, k) @ B[ob:] (k, p), the large-product loops. Rows are taken as
    slices: indexing with a runtime offset keeps Numba's negative-index check in the inner loop,
    which stops it from vectorizing.

    With at most k columns, each output is a dot product of the row with a column of B (a
    local transposed copy), summed in registers. Adding each row of B to the row's outputs
    instead keeps them in the arena, which LLVM cannot hold in registers (it may alias A or
    B): the 1,000,000 x 32 @ 32 x 2 product took 9x as long. With more columns than k (short
    rows, wide outputs, e.g. k = 4 and p = 64), the dot products are the slower (3x), so
    those rows add B's rows, into a local row (the same sums in the same order, 2-2.5x faster
    on 100,000 x 32 @ 32 x 64 than adding into the arena's outputs).

    From STRIP_MIN columns and k up, four rows at a time by register tiles (mm_strip4): 3.8 ms
    on 100,000 x 32 @ 32 x 64 float32 against 15.7 ms for the loops (NumPy's BLAS: 6.6 ms),
    one thread, a 2-core AMD EPYC."""
    if p == 1:
        W = B[ob:ob + k]
        for i in range(n):
            a = A[oa + i * k:oa + i * k + k]
            s = O.dtype.type(0)
            for l in range(k):
                s += a[l] * W[l]
            O[oo + i] = s
        return
    if p >= STRIP_MIN and k >= STRIP_MIN:
        m = n - n % 4
        for i in range(0, m, 4):
            mm_strip4(O, oo + i * p, p, A, oa + i * k, 1, k, B, ob, p, k, p)
        for i in range(m, n):
            mm_strip1(O, oo + i * p, p, A, oa + i * k, 1, k, B, ob, p, k, p)
        return
    if p <= k:
        WT = np.empty(p * k, B.dtype)           # B transposed: its columns contiguous
        for l in range(k):
            for j in range(p):
                WT[j * k + l] = B[ob + l * p + j]
        for i in range(n):
            a = A[oa + i * k:oa + i * k + k]
            for j in range(p):
                wt = WT[j * k:j * k + k]
                s = O.dtype.type(0)
                for l in range(k):
                    s += a[l] * wt[l]
                O[oo + i * p + j] = s
        return
    W = B[ob:ob + k * p]
    acc = np.empty(p, O.dtype)      # the row's outputs: a local array, which no arena aliases
    for i in range(n):
        a = A[oa + i * k:oa + i * k + k]
        for j in range(p):
            acc[j] = 0
        for l in range(k):
            av = a[l]
            w = W[l * p:l * p + p]
            for j in range(p):
                acc[j] += av * w[j]
        o = O[oo + i * p:oo + i * p + p]
        for j in range(p):
            o[j] = acc[j]


@fast
def mm_rows_bwd(A, B, GA, GB, G, oa, ob, oga, ogb, go, n, k, p, ga, gb, pf):
    """GA[oga:] += G[go:] B^T and GB[ogb:] += A^T G[go:] for A[oa:] (n, k) @ B[ob:] (k, p), the
    large-product loops. A^T G is summed over the rows (four at a time when p == 1) in a local
    array, which LLVM knows aliases neither arena, and added to GB at the end. With several
    columns but at most k, that array is transposed, so each column's sum is a unit-stride
    loop over the row (p = 2 on 1,000,000 x 32: 5x faster); with more than k, the outer
    products of four rows are added a row of them at a time (as mm_rows_fwd chooses). From
    STRIP_MIN columns and k up, both by register tiles instead (mm_strip4_add): A^T G four of
    A's columns at a time over GB_BLOCK rows (100,000 x 32 with p = 64, float32: 5.5 ms
    against 10.0 ms, NumPy's BLAS 7.8 ms), G B^T four rows at a time against B transposed.

    pf > 0 (p > 1): while a row is summed, prefetch the row pf elements further in A. The fused
    pass of a product of several columns (tapegrad.fuse) passes the next block's distance, so
    the next block comes from memory while this one is summed, where memory would idle (README,
    "At scale"); a single column is fused a row at a time instead."""
    W = B[ob:ob + k * p]
    step = LINE // A.itemsize
    if gb:
        acc = np.zeros(k * p, GB.dtype)
        if p == 1:
            m = n - n % 4
            for i in range(0, m, 4):
                a0 = A[oa + i * k:oa + i * k + k]
                a1 = A[oa + i * k + k:oa + i * k + 2 * k]
                a2 = A[oa + i * k + 2 * k:oa + i * k + 3 * k]
                a3 = A[oa + i * k + 3 * k:oa + i * k + 4 * k]
                g0, g1, g2, g3 = G[go + i], G[go + i + 1], G[go + i + 2], G[go + i + 3]
                for l in range(k):
                    acc[l] += (a0[l] * g0 + a1[l] * g1) + (a2[l] * g2 + a3[l] * g3)
            for i in range(m, n):
                a0 = A[oa + i * k:oa + i * k + k]
                g0 = G[go + i]
                for l in range(k):
                    acc[l] += a0[l] * g0
        elif p >= STRIP_MIN and k >= STRIP_MIN:     # strips of four of A's columns,
            kk = k - k % 4                          # GB_BLOCK rows at a time
            for i0 in range(0, n, GB_BLOCK):
                nr = min(GB_BLOCK, n - i0)
                if pf > 0:
                    for q in range(0, nr * k, step):
                        prefetch(A, oa + i0 * k + pf + q)
                for l in range(0, kk, 4):
                    mm_strip4_add(acc, l * p, p, A, oa + i0 * k + l, k, 1, G, go + i0 * p, p,
                                  nr, p)
                for l in range(kk, k):
                    mm_strip1_add(acc, l * p, p, A, oa + i0 * k + l, k, 1, G, go + i0 * p, p,
                                  nr, p)
        elif p <= k:                # acc transposed, (p, k): a row adds g[j] * row per column
            for i in range(n):
                if pf > 0:
                    for q in range(0, k, step):
                        prefetch(A, oa + i * k + pf + q)
                a = A[oa + i * k:oa + i * k + k]
                for j in range(p):
                    gj = G[go + i * p + j]
                    t = acc[j * k:j * k + k]
                    for l in range(k):
                        t[l] += gj * a[l]
            GW = GB[ogb:ogb + k * p]
            for l in range(k):
                for j in range(p):
                    GW[l * p + j] += acc[j * k + l]
        else:                       # four rows at a time: a quarter of acc's loads and
            m = n - n % 4           # stores (1.3x on 100,000 x 32 with p = 64)
            for i in range(0, m, 4):
                if pf > 0:
                    for q in range(0, 4 * k, step):
                        prefetch(A, oa + i * k + pf + q)
                a0 = A[oa + i * k:oa + i * k + k]
                a1 = A[oa + i * k + k:oa + i * k + 2 * k]
                a2 = A[oa + i * k + 2 * k:oa + i * k + 3 * k]
                a3 = A[oa + i * k + 3 * k:oa + i * k + 4 * k]
                g0 = G[go + i * p:go + i * p + p]
                g1 = G[go + i * p + p:go + i * p + 2 * p]
                g2 = G[go + i * p + 2 * p:go + i * p + 3 * p]
                g3 = G[go + i * p + 3 * p:go + i * p + 4 * p]
                for l in range(k):
                    v0, v1, v2, v3 = a0[l], a1[l], a2[l], a3[l]
                    row = acc[l * p:l * p + p]
                    for j in range(p):
                        row[j] += (v0 * g0[j] + v1 * g1[j]) + (v2 * g2[j] + v3 * g3[j])
            for i in range(m, n):
                a = A[oa + i * k:oa + i * k + k]
                g = G[go + i * p:go + i * p + p]
                for l in range(k):
                    av = a[l]
                    row = acc[l * p:l * p + p]
                    for j in range(p):
                        row[j] += av * g[j]
        if p == 1 or p > k or (p >= STRIP_MIN and k >= STRIP_MIN):
            GW = GB[ogb:ogb + k * p]
            for l in range(k * p):
                GW[l] += acc[l]
    if ga:
        if p == 1:
            for i in range(n):
                g0 = G[go + i]
                gx = GA[oga + i * k:oga + i * k + k]
                for l in range(k):
                    gx[l] += g0 * W[l]
        elif p >= STRIP_MIN and k >= STRIP_MIN:     # G B^T by strips against B transposed
            BT = np.empty(p * k, B.dtype)
            for l in range(k):
                for j in range(p):
                    BT[j * k + l] = W[l * p + j]
            m = n - n % 4
            for i in range(0, m, 4):
                mm_strip4_add(GA, oga + i * k, k, G, go + i * p, 1, p, BT, 0, k, p, k)
            for i in range(m, n):
                mm_strip1_add(GA, oga + i * k, k, G, go + i * p, 1, p, BT, 0, k, p, k)
        else:
            for i in range(n):
                g = G[go + i * p:go + i * p + p]
                gx = GA[oga + i * k:oga + i * k + k]
                for l in range(k):
                    w = W[l * p:l * p + p]
                    s = GA.dtype.type(0)
                    for j in range(p):
                        s += g[j] * w[j]
                    gx[l] += s


@jit
def matmul_fwd(A, B, O, M, m):
    nb, n, k, p = M[m], M[m + 1], M[m + 2], M[m + 3]
    for bi in range(nb):
        oa, ob, oo = M[m + 4 + bi], M[m + 4 + nb + bi], bi * n * p
        if n * k * p > SMALL_MATMUL:
            mm_rows_fwd(A, B, O, oa, ob, oo, n, k, p)
            continue
        for i in range(n):
            for j in range(p):
                O[oo + i * p + j] = 0
            for l in range(k):
                av = A[oa + i * k + l]
                for j in range(p):
                    O[oo + i * p + j] += av * B[ob + l * p + j]


@jit
def matmul_bwd(A, B, GA, GB, GO, M, m, ga, gb):
    nb, n, k, p = M[m], M[m + 1], M[m + 2], M[m + 3]
    for bi in range(nb):
        oa, ob, oo = M[m + 4 + bi], M[m + 4 + nb + bi], bi * n * p
        if n * k * p > SMALL_MATMUL:
            mm_rows_bwd(A, B, GA, GB, GO, oa, ob, oa, ob, oo, n, k, p, ga, gb, np.int64(0))
        else:
            for i in range(n):
                for l in range(k):
                    av = A[oa + i * k + l]
                    s = 0.0
                    for j in range(p):
                        g = GO[oo + i * p + j]
                        s += g * B[ob + l * p + j]      # dA = G B^T
                        if gb:
                            GB[ob + l * p + j] += av * g  # dB = A^T G
                    if ga:
                        GA[oa + i * k + l] += s
        for i in range(n * p):
            GO[oo + i] = 0


# ---- data movement ----
GATHER_AHEAD = 16   # rows of a minibatch prefetched ahead of the one being copied


# Zeroed buffers for generated code (tapegrad.codegen): np.zeros in a program compiles
# Numba's np.zeros for each of its signatures (0.1-0.3 s each) in every process that compiles
# a program; these are compiled once, in the package's cache.
@jit
def zeros32(n):
    return np.zeros(n, np.float32)


@jit
def zeros64(n):
    return np.zeros(n, np.float64)


@jit
def zeros32_2d(m, n):
    return np.zeros((m, n), np.float32)


@jit
def zeros64_2d(m, n):
    return np.zeros((m, n), np.float64)


@jit
def gather_rows(A, oa, O, oo, idx, step, w):
    """O[oo + r * w:oo + r * w + w] = A[oa + idx[step, r] * w:...] for each r: a minibatch's
    rows (the caller has checked idx against A's rows). The rows are scattered over A, so each
    is a cache miss; GATHER_AHEAD rows ahead are prefetched so the misses overlap: 9.7 us a
    batch of 256 rows of 32 float32 from a 1,000,000-row X, against 27 us without, on a Zen 4."""
    nr = idx.shape[1]
    line = LINE // A.itemsize
    for r in range(min(GATHER_AHEAD, nr)):
        src = oa + idx[step, r] * w
        for q in range(0, w, line):
            prefetch(A, src + q)
        prefetch(A, src + w - 1)
    for r in range(nr):
        if r + GATHER_AHEAD < nr:
            src = oa + idx[step, r + GATHER_AHEAD] * w
            for q in range(0, w, line):
                prefetch(A, src + q)
            prefetch(A, src + w - 1)
        src, dst = oa + idx[step, r] * w, oo + r * w
        for i in range(w):
            O[dst + i] = A[src + i]


@rule
def _strided_meta(M, m):
    nd = M[m]
    return M[m + 1:m + 1 + nd], M[m + 1 + nd:m + 1 + 2 * nd], M[m + 1 + 2 * nd]


@jit
def strided_fwd(X, O, M, m):
    shape, st, base = _strided_meta(M, m)
    idx = np.zeros(shape.size, np.int64)
    ix = base
    for o in range(O.size):
        O[o] = X[ix]
        ix, _ = _advance(idx, shape, st, st, ix, np.int64(0))


@jit
def strided_bwd(GX, GO, M, m):
    shape, st, base = _strided_meta(M, m)
    idx = np.zeros(shape.size, np.int64)
    ix = base
    for o in range(GO.size):
        GX[ix] += GO[o]
        GO[o] = 0
        ix, _ = _advance(idx, shape, st, st, ix, np.int64(0))


@rule
def _region(M, m):
    shape, dst, base = _strided_meta(M, m)
    nd = shape.size
    n = 1
    for d in range(nd):
        n *= shape[d]
    return shape, dst, base, M[m + 2 + 2 * nd:m + 2 + 3 * nd], n


@jit
def setstrided_fwd(S, D, M, m):
    shape, dst, base, src, n = _region(M, m)
    idx = np.zeros(shape.size, np.int64)
    i_d = base
    i_s = np.int64(0)
    for _ in range(n):
        D[i_d] = S[i_s]
        i_d, i_s = _advance(idx, shape, dst, src, i_d, i_s)


@jit
def setstrided_bwd(GS, GD, M, m, gs):
    shape, dst, base, src, n = _region(M, m)
    idx = np.zeros(shape.size, np.int64)
    i_d = base
    i_s = np.int64(0)
    for _ in range(n):
        if gs:
            GS[i_s] += GD[i_d]
        GD[i_d] = 0                             # the region was overwritten
        i_d, i_s = _advance(idx, shape, dst, src, i_d, i_s)


@jit
def index_fwd(X, O, M, m):
    count, inner = M[m], M[m + 1]
    for r in range(count):
        src = M[m + 2 + r]
        for j in range(inner):
            O[r * inner + j] = X[src + j]


@jit
def index_bwd(GX, GO, M, m):
    count, inner = M[m], M[m + 1]
    for r in range(count):
        src = M[m + 2 + r]
        for j in range(inner):
            GX[src + j] += GO[r * inner + j]    # repeated rows accumulate
            GO[r * inner + j] = 0


@jit
def copy_fwd(X, O):
    for i in range(O.size):
        O[i] = X[i]


@jit
def copy_bwd(GX, GO, gx):
    for i in range(GO.size):
        if gx:
            GX[i] += GO[i]
        GO[i] = 0


@jit
def fill_fwd(O, v):
    for i in range(O.size):
        O[i] = v
