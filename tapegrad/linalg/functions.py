"""torch.linalg's functions over the OP_LINALG record.

Each function checks its arguments in Python (shapes, dtypes, options, with torch's messages),
then records one OP_LINALG record computing a packed output, which strided copies split. The
record is not differentiable: each differentiable function is an autograd.Function whose
forward records it (with gradients off) and whose backward is tensor ops (the known adjoint
rules, written as torch writes them), the record again for the solves. So gradients work
eagerly, and under tapegrad.compile the backward's records are part of the recording: replays
and specialized code run them without Python.

Failures torch raises for (a singular matrix in solve and inv, a matrix that is not
positive-definite in cholesky) are written by the kernel into status elements of the output.
The function reads the status (a flush of the tape) and raises LinAlgError. Under
tapegrad.compile that read is a guard on the comparison's outcome: a replay whose new data
fails the check stops at the guard, and the call records again (eagerly), which raises.
"""
import math
from collections import namedtuple

import numpy as np

from .. import dtypes as D
from ..autograd.function import Function
from ..compile import Quiet
from ..factory import eye, zeros
from ..ops import OP_LINALG
from ..tape import TAPE
from ..tensor import Tensor, _contiguous_strides, _prod, _record, _strided
from . import kernels as K

__all__ = ["LinAlgError", "solve", "inv", "det", "slogdet", "cholesky", "solve_triangular",
           "lstsq", "pinv", "qr", "svd", "svdvals", "eigh", "eigvalsh", "norm", "vector_norm",
           "matrix_norm", "cond", "inv_ex", "cholesky_ex", "matmul", "vecdot", "diagonal"]


class LinAlgError(RuntimeError):
    """A linear algebra failure (torch.linalg.LinAlgError): a singular matrix in solve or inv,
    a matrix that is not positive-definite in cholesky."""


_slogdet_t = namedtuple("linalg_slogdet", ["sign", "logabsdet"])
_slogdet_top = namedtuple("slogdet", ["sign", "logabsdet"])
_qr_t = namedtuple("linalg_qr", ["Q", "R"])
_svd_t = namedtuple("linalg_svd", ["U", "S", "Vh"])
_eigh_t = namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
_lstsq_t = namedtuple("linalg_lstsq", ["solution", "residuals", "rank", "singular_values"])
_inv_ex_t = namedtuple("linalg_inv_ex", ["inverse", "info"])
_cholesky_ex_t = namedtuple("linalg_cholesky_ex", ["L", "info"])

_TYPE = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
         "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def _tname(t):
    return _TYPE.get(t._dt.name, t._dt.name)


# ---- argument checks ----
def _tensor(A, fn, arg="A", pos=1):
    if not isinstance(A, Tensor):
        raise TypeError(f"{fn}(): argument '{arg}' (position {pos}) must be Tensor, not "
                        f"{type(A).__name__}")
    return A


def _matrix(A, name, square=False, arg="A"):
    """A float tensor of at least 2 dimensions (square ones if `square`)."""
    _tensor(A, "linalg_" + name.split(".")[-1], arg)
    if not A._dt.is_floating_point:
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. "
                           f"Got {_tname(A)}")
    if A.dim() < 2:
        raise RuntimeError(f"{name}: The input tensor {arg} must have at least 2 dimensions.")
    if square and A._shape[-1] != A._shape[-2]:
        raise RuntimeError(f"{name}: {arg} must be batches of square matrices, but they are "
                           f"{A._shape[-2]} by {A._shape[-1]} matrices")
    return A


def _same_dtype(A, B, name):
    if A._dt is not B._dt:
        raise RuntimeError(f"{name}: Expected A and B to have the same dtype, but found A of "
                           f"type {_tname(A)} and B of type {_tname(B)} instead")


def _batch(sa, sb):
    """The broadcast of two batch shapes, with torch's message."""
    nd = max(len(sa), len(sb))
    pa, pb = (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)
    out = []
    for i, (p, q) in enumerate(zip(pa, pb)):
        if p != q and p != 1 and q != 1:
            raise RuntimeError(f"The size of tensor a ({p}) must match the size of tensor b "
                               f"({q}) at non-singleton dimension {i}")
        out.append(max(p, q) if min(p, q) != 0 else 0)
    return tuple(out)


def _offsets(batch, shape, size):
    """The element offset of each matrix of a tensor of batch shape `batch` (matrices of
    `size` elements), broadcast to `shape`, in order."""
    n = _prod(batch)
    idx = np.arange(n, dtype=np.int64).reshape(batch) if batch else np.int64(0)
    return (np.broadcast_to(idx, shape).reshape(-1) * size).tolist()


# ---- the record and its outputs ----
def _prim(kind, A, r, c, length, q=0, flags=0, B=None, consts=None, batch=None, bshape=None):
    """One OP_LINALG record on A (..., r, c), and B (matrices of `bshape`) if given; its packed
    output, `length` elements, as a 1-D tensor (no gradient)."""
    ba = A._shape[:-2]
    batch = ba if batch is None else batch
    nb = _prod(batch)
    offa = _offsets(ba, batch, A._shape[-2] * A._shape[-1])
    offb = offa if B is None else _offsets(B._shape[:-2], batch, _prod(bshape))
    aux = TAPE.add_meta([kind, nb, r, c, q, flags] + offa + offb)
    if B is not None:
        b = B._slot
    elif consts is not None:
        b = TAPE.const(A._dt.code, consts[0])
        TAPE.const(A._dt.code, consts[1])          # the next immediate: C[cb + 1]
    else:
        b = A._slot
    with D.no_grad():
        return _record(OP_LINALG, A._slot, b, (length,), A._dt, False, None, aux)


def _part(P, shape, base):
    """Elements base.. of the packed output P as a tensor of `shape` (a strided copy)."""
    if base == 0 and _prod(shape) == P._shape[0]:
        return P.view(shape) if shape != P._shape else P
    return _strided(P, tuple(shape), _contiguous_strides(shape), base, None)


def _check(P, batched, nb, name, message):
    """Raise LinAlgError if the status element P[0] is not 0 (see the module's docstring)."""
    if _part(P, (), 0).item() != 0:
        with Quiet():
            info = P.detach().numpy()[1:1 + nb]
        bi = int(np.flatnonzero(info)[0])
        where = f"(Batch element {bi}): " if batched else ""
        raise LinAlgError(f"{name}: {where}{message(int(info[bi]))}")


def _solve_raw(A, B, check=False, name="torch.linalg.solve"):
    """X = A^-1 B for A (..., n, n), B (..., n, k), batches broadcast (no gradient)."""
    n, k = A._shape[-1], B._shape[-1]
    batch = _batch(A._shape[:-2], B._shape[:-2])
    nb = _prod(batch)
    P = _prim(K.K_SOLVE, A, n, k, 1 + nb + nb * n * k, flags=K.F_CHECK if check else 0,
              B=B, batch=batch, bshape=(n, k))
    if check:
        _check(P, len(batch) > 0, nb, name, lambda i: "The solver failed because the input "
               "matrix is singular.")
    return _part(P, batch + (n, k), 1 + nb)


def _inv_raw(A, check=False):
    n = A._shape[-1]
    batch = A._shape[:-2]
    nb = _prod(batch)
    P = _prim(K.K_INV, A, n, n, 1 + nb + nb * n * n, flags=K.F_CHECK if check else 0)
    if check:
        _check(P, len(batch) > 0, nb, "linalg.inv", lambda i: f"The diagonal element {i} is "
               f"zero, the inversion could not be completed because the input matrix is "
               f"singular.")
    return _part(P, A._shape, 1 + nb)


def _trsolve_raw(A, B, upper, unit=False):
    n, k = A._shape[-1], B._shape[-1]
    batch = _batch(A._shape[:-2], B._shape[:-2])
    flags = (K.F_UPPER if upper else 0) | (K.F_UNIT if unit else 0)
    P = _prim(K.K_TRSOLVE, A, n, k, _prod(batch) * n * k, flags=flags, B=B, batch=batch,
              bshape=(n, k))
    return _part(P, batch + (n, k), 0)


def _mT(x):
    return x.transpose(-2, -1)


def _diag_embed(v):
    n = v._shape[-1]
    return v.unsqueeze(-1) * eye(n, dtype=v._dt)


def _tri_mask(n, dt, lower, diagonal=0):
    m = np.tri(n, n, diagonal) if lower else 1.0 - np.tri(n, n, diagonal - 1)
    from ..tensor import tensor
    return tensor(m, dtype=dt)


# ---- solve, inv, det, slogdet ----
class _Solve(Function):
    @staticmethod
    def forward(ctx, A, B, vec):
        ctx._name = "LinalgSolveExBackward0"
        X = _solve_raw(A, B.unsqueeze(-1) if vec else B, check=True)
        ctx.save_for_backward(A, X)
        ctx.vec = vec
        return X.squeeze(-1) if vec else X

    @staticmethod
    def backward(ctx, gX):
        A, X = ctx.saved_tensors
        gB = _solve_raw(_mT(A), gX.unsqueeze(-1) if ctx.vec else gX)      # A^-T gX
        gA = -(gB @ _mT(X)) if ctx.needs_input_grad[0] else None
        gB = gB.squeeze(-1) if ctx.vec else gB
        return gA, gB if ctx.needs_input_grad[1] else None, None


def _is_vector_rhs(A, B):
    """torch's rule: B is a batch of vectors if it is 1-D, or has one dimension fewer than A
    and A's batch and rows as its shape."""
    return B.dim() == 1 or (B.dim() == A.dim() - 1 and B._shape == A._shape[:-1])


def solve(A, B, *, left=True, out=None):
    """torch.linalg.solve: X with A X = B (left=False: X A = B), batches broadcast."""
    name = "linalg.solve"
    _matrix(A, name, square=True)
    _tensor(B, "linalg_solve", "B", 2)
    _same_dtype(A, B, name)
    vec = _is_vector_rhs(A, B)
    Bm = B.unsqueeze(-1) if vec else B
    n = A._shape[-1]
    if left:
        bad = Bm.dim() < 2 or Bm._shape[-2] != n
    else:
        bad = vec or Bm._shape[-1] != n
    if bad:
        bs = "x".join(str(d) for d in (Bm._shape[-2:] if Bm.dim() >= 2 else (*Bm._shape, 1)))
        raise RuntimeError(f"{name}: Incompatible shapes of A and B for the equation "
                           f"{'AX' if left else 'XA'} = B ({n}x{n} and {bs})")
    if not left:
        return _mT(solve(_mT(A), _mT(B)))
    _batch(Bm._shape[:-2], A._shape[:-2])          # (torch names B's size first)
    return _Solve.apply(A, B, vec)


class _Inv(Function):
    @staticmethod
    def forward(ctx, A):
        ctx._name = "LinalgInvExBackward0"
        Ai = _inv_raw(A, check=True)
        ctx.save_for_backward(Ai)
        return Ai

    @staticmethod
    def backward(ctx, g):
        Ai, = ctx.saved_tensors
        AiT = _mT(Ai)
        return -(AiT @ g @ AiT)


def inv(A, *, out=None):
    """torch.linalg.inv: the inverse of each square matrix; LinAlgError if one is singular."""
    _matrix(A, "linalg.inv", square=True)
    return _Inv.apply(A)


def inv_ex(A, *, check_errors=False, out=None):
    """torch.linalg.inv_ex: (inverse, info) without raising (unless check_errors)."""
    _matrix(A, "linalg.inv_ex", square=True)
    if check_errors:
        return _inv_ex_t(inv(A), zeros(A._shape[:-2], dtype=D.int32))
    n, batch = A._shape[-1], A._shape[:-2]
    nb = _prod(batch)
    with D.no_grad():
        P = _prim(K.K_INV, A.detach(), n, n, 1 + nb + nb * n * n, flags=K.F_CHECK)
        info = _part(P, batch, 1).to(D.int32)
    return _inv_ex_t(_inv_nocheck(A) if A.requires_grad and D.is_grad_enabled() else
                     _part(P, A._shape, 1 + nb), info)


def _det_raw(A):
    n, batch = A._shape[-1], A._shape[:-2]
    nb = _prod(batch)
    P = _prim(K.K_DET, A, n, n, 3 * nb)
    return _part(P, batch, 0), _part(P, batch, nb), _part(P, batch, 2 * nb)


class _Det(Function):
    @staticmethod
    def forward(ctx, A):
        ctx._name = "LinalgDetBackward0"
        d, _, _ = _det_raw(A)
        ctx.save_for_backward(A, d)
        return d

    @staticmethod
    def backward(ctx, g):
        A, d = ctx.saved_tensors
        # the cofactor matrix det(A) A^-T (not finite at an exactly singular A)
        return (g * d).unsqueeze(-1).unsqueeze(-1) * _mT(_inv_raw(A))


def det(A, *, out=None):
    """torch.linalg.det."""
    _matrix(A, "linalg.det", square=True)
    return _Det.apply(A)


class _Slogdet(Function):
    @staticmethod
    def forward(ctx, A):
        ctx._name = "LinalgSlogdetBackward0"
        _, sign, logabs = _det_raw(A)
        ctx.save_for_backward(A)
        ctx.mark_non_differentiable(sign)
        return sign, logabs

    @staticmethod
    def backward(ctx, gsign, glog):
        A, = ctx.saved_tensors
        return glog.unsqueeze(-1).unsqueeze(-1) * _mT(_inv_raw(A))


def slogdet(A, *, out=None):
    """torch.linalg.slogdet: (sign, logabsdet); sign 0 and logabsdet -inf for a singular A."""
    _matrix(A, "linalg.slogdet", square=True)
    return _slogdet_t(*_Slogdet.apply(A))


# ---- cholesky, solve_triangular ----
def _cholesky_raw(A, check):
    n, batch = A._shape[-1], A._shape[:-2]
    nb = _prod(batch)
    P = _prim(K.K_CHOL, A, n, n, 1 + nb + nb * n * n, flags=K.F_CHECK if check else 0)
    return P, _part(P, A._shape, 1 + nb)


class _Cholesky(Function):
    @staticmethod
    def forward(ctx, A):
        ctx._name = "LinalgCholeskyExBackward0"
        P, L = _cholesky_raw(A, True)
        nb = _prod(A._shape[:-2])
        _check(P, A.dim() > 2, nb, "linalg.cholesky", lambda i: "The factorization could not "
               f"be completed because the input is not positive-definite (the leading minor "
               f"of order {i} is not positive-definite).")
        ctx.save_for_backward(L)
        return L

    @staticmethod
    def backward(ctx, gL):
        # as torch (Murray, 2016): gA = L^-H phi(L^H gL) L^-1, symmetrized
        L, = ctx.saved_tensors
        n = L._shape[-1]
        low = _tri_mask(n, L._dt, True)
        gA = (_mT(L) @ gL) * low
        gA = 0.5 * (gA + _mT(gA * _tri_mask(n, L._dt, True, -1)))
        gA = _trsolve_raw(_mT(L), gA, upper=True)               # L^-T gA
        return _mT(_trsolve_raw(_mT(L), _mT(gA), upper=True))   # (L^-T (gA)^T)^T = gA L^-1


def cholesky(A, *, upper=False, out=None):
    """torch.linalg.cholesky: L (lower) with A = L L^T, from A's lower triangle (upper=True:
    U = L^T from A's upper triangle); LinAlgError if A is not positive-definite."""
    _matrix(A, "linalg.cholesky", square=True)
    if upper:
        return _mT(_Cholesky.apply(_mT(A)))
    return _Cholesky.apply(A)


def cholesky_ex(A, *, upper=False, check_errors=False, out=None):
    """torch.linalg.cholesky_ex: (L, info) without raising (unless check_errors)."""
    _matrix(A, "linalg.cholesky_ex", square=True)
    if check_errors:
        return _cholesky_ex_t(cholesky(A, upper=upper), zeros(A._shape[:-2], dtype=D.int32))
    src = _mT(A) if upper else A
    with D.no_grad():
        P, L = _cholesky_raw(src.detach(), True)
        info = _part(P, A._shape[:-2], 1).to(D.int32)
    if src.requires_grad and D.is_grad_enabled():
        if _part(P, (), 0).item() == 0:         # (under compile: a guard on the outcome)
            L = _Cholesky.apply(src)
    return _cholesky_ex_t(_mT(L) if upper else L, info)


class _SolveTriangular(Function):
    @staticmethod
    def forward(ctx, A, B, upper, unit):
        ctx._name = "LinalgSolveTriangularBackward0"
        X = _trsolve_raw(A, B, upper, unit)
        ctx.save_for_backward(A, X)
        ctx.upper, ctx.unit = upper, unit
        return X

    @staticmethod
    def backward(ctx, gX):
        A, X = ctx.saved_tensors
        gB = _trsolve_raw(_mT(A), gX, not ctx.upper, ctx.unit)
        gA = None
        if ctx.needs_input_grad[0]:
            n = A._shape[-1]
            mask = _tri_mask(n, A._dt, not ctx.upper, -1 if ctx.unit else 0)
            if ctx.upper:
                mask = _tri_mask(n, A._dt, False, 1 if ctx.unit else 0)
            gA = -(gB @ _mT(X)) * mask
        return gA, gB if ctx.needs_input_grad[1] else None, None, None


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    """torch.linalg.solve_triangular: X with A X = B (left=False: X A = B) for triangular A
    (only its triangle is read; unitriangular: its diagonal taken as ones)."""
    name = "linalg.solve_triangular"
    _matrix(A, name, square=True)
    _matrix(B, name, arg="B")
    _same_dtype(A, B, name)
    if not left:
        return _mT(solve_triangular(_mT(A), _mT(B), upper=not upper,
                                    unitriangular=unitriangular))
    if B._shape[-2] != A._shape[-1]:
        raise RuntimeError(f"{name}: Incompatible shapes of A and B for the equation AX = B "
                           f"({A._shape[-2]}x{A._shape[-1]} and "
                           f"{B._shape[-2]}x{B._shape[-1]})")
    _batch(A._shape[:-2], B._shape[:-2])
    return _SolveTriangular.apply(A, B, bool(upper), bool(unitriangular))


# ---- qr ----
def _qr_raw(A, mode):
    r, c = A._shape[-2:]
    batch = A._shape[:-2]
    nb = _prod(batch)
    k = min(r, c)
    code = {"reduced": K.QR_REDUCED, "complete": K.QR_COMPLETE, "r": K.QR_R}[mode]
    kq = r if mode == "complete" else k
    rr = r if mode == "complete" else k
    nq = 0 if mode == "r" else r * kq
    P = _prim(K.K_QR, A, r, c, nb * (nq + rr * c), q=code)
    Q = _part(P, batch + (r, kq), 0) if mode != "r" else zeros(0, dtype=A._dt)
    return Q, _part(P, batch + (rr, c), nb * nq)


class _QR(Function):
    @staticmethod
    def forward(ctx, A, mode):
        ctx._name = "LinalgQrBackward0"
        Q, R = _qr_raw(A, mode)
        ctx.save_for_backward(Q, R)
        ctx.mode = mode
        if mode == "r":
            ctx.mark_non_differentiable(Q)
        return Q, R

    @staticmethod
    def backward(ctx, gQ, gR):
        Q, R = ctx.saved_tensors
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed "
                               "when mode='r'. Please use linalg.qr(A, mode='reduced') if you "
                               "are going to differentiate through linalg.qr.")
        m, n = Q._shape[-2], R._shape[-1]
        if ctx.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when "
                               "mode='complete' and nrows > ncols.")
        if m >= n:
            return _qr_grad_tall(Q, R, gQ, gR), None
        # wide: A = Q [U | V]; X = A[:, :m] = Q U, Y = A[:, m:] = Q V
        U, V = R.narrow(-1, 0, m), R.narrow(-1, m, n - m)
        gU, gV = gR.narrow(-1, 0, m), gR.narrow(-1, m, n - m)
        Y = Q @ V
        gY = Q @ gV
        gX = _qr_grad_tall(Q, U, gQ + Y @ _mT(gV), gU)
        from ..tensor import cat
        return cat([gX, gY], dim=-1), None


def _qr_grad_tall(Q, R, gQ, gR):
    """gA for A = Q R with R square (m >= n): Q (gR + tril(M) R^-T) + (gQ - Q Q^T gQ) R^-T,
    M = Q^T gQ - gQ^T Q + R gR^T - gR R^T (Walter and Lehmann's rule, as TensorFlow)."""
    n = R._shape[-1]
    qdq = _mT(Q) @ gQ
    rdr = R @ _mT(gR)
    M = (qdq - _mT(qdq) + rdr - _mT(rdr)) * _tri_mask(n, R._dt, True, -1)

    def right_rinv_t(X):                        # X R^-T = (R^-1 X^T)^T
        return _mT(_trsolve_raw(R, _mT(X), upper=True))
    return Q @ (gR + right_rinv_t(M)) + right_rinv_t(gQ - Q @ qdq)


def qr(A, mode="reduced", *, out=None):
    """torch.linalg.qr: (Q, R) by Householder reflections (R's signs as LAPACK's); mode
    'reduced', 'complete' or 'r' (Q empty)."""
    _tensor(A, "linalg_qr")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           f"'reduced' (default), 'r', or 'complete'")
    _matrix(A, "linalg.qr")
    return _qr_t(*_QR.apply(A, mode))


# ---- eigh, eigvalsh ----
def _uplo(UPLO, name):
    if UPLO not in ("L", "U", "l", "u"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return UPLO.upper() == "U"


def _eigh_raw(A, upper):
    n, batch = A._shape[-1], A._shape[:-2]
    nb = _prod(batch)
    P = _prim(K.K_EIGH, A, n, n, nb * (n + n * n), flags=K.F_UPPER if upper else 0)
    return _part(P, batch + (n,), 0), _part(P, A._shape, nb * n)


class _Eigh(Function):
    @staticmethod
    def forward(ctx, A, upper):
        ctx._name = "LinalgEighBackward0"
        w, V = _eigh_raw(A, upper)
        ctx.save_for_backward(w, V)
        return w, V

    @staticmethod
    def backward(ctx, gw, gV):
        w, V = ctx.saved_tensors
        n = w._shape[-1]
        I = eye(n, dtype=w._dt)
        VhgV = _mT(V) @ gV
        VhgV = 0.5 * (VhgV - _mT(VhgV))
        E = w.unsqueeze(-2) - w.unsqueeze(-1) + I           # E[i, j] = w[j] - w[i], 1 on the
        inner = VhgV / E + gw.unsqueeze(-1) * I             # diagonal (where VhgV is 0)
        return V @ inner @ _mT(V), None


class _Eigvalsh(Function):
    @staticmethod
    def forward(ctx, A, upper):
        ctx._name = "LinalgEighBackward0"
        w, V = _eigh_raw(A, upper)
        ctx.save_for_backward(V)
        return w

    @staticmethod
    def backward(ctx, gw):
        V, = ctx.saved_tensors
        return (V * gw.unsqueeze(-2)) @ _mT(V), None


def eigh(A, UPLO="L", *, out=None):
    """torch.linalg.eigh: (eigenvalues ascending, eigenvectors as columns) of each symmetric
    matrix, from its lower (UPLO='L') or upper triangle, by Jacobi rotations (eigenvectors'
    signs are not LAPACK's)."""
    upper = _uplo(UPLO, "linalg.eigh")
    _matrix(A, "linalg.eigh", square=True)
    return _eigh_t(*_Eigh.apply(A, upper))


def eigvalsh(A, UPLO="L", *, out=None):
    """torch.linalg.eigvalsh: the eigenvalues of eigh."""
    upper = _uplo(UPLO, "linalg.eigvalsh")
    _matrix(A, "linalg.eigvalsh", square=True)
    return _Eigvalsh.apply(A, upper)


# ---- svd, svdvals ----
def _svd_raw(A, full, uv=True):
    r, c = A._shape[-2:]
    batch = A._shape[:-2]
    nb = _prod(batch)
    k = min(r, c)
    ku, kv = (r, c) if full else (k, k)
    nu, nv = (r * ku, kv * c) if uv else (0, 0)
    flags = (K.F_FULL if full else 0) | (K.F_UV if uv else 0)
    P = _prim(K.K_SVD, A, r, c, nb * (nu + k + nv), flags=flags)
    S = _part(P, batch + (k,), nb * nu)
    if not uv:
        return None, S, None
    return (_part(P, batch + (r, ku), 0), S, _part(P, batch + (kv, c), nb * (nu + k)))


def _svd_grad(gU, gS, gVh, U, S, Vh):
    """torch's svd_backward (real case, reduced U and Vh)."""
    m, n = U._shape[-2], Vh._shape[-1]
    if gU is None and gVh is None:
        return U @ (gS.unsqueeze(-1) * Vh) if m >= n else (U * gS.unsqueeze(-2)) @ Vh
    k = S._shape[-1]
    I = eye(k, dtype=S._dt)
    UhgU = _mT(U) @ gU
    UhgU = UhgU - _mT(UhgU)
    VhgV = Vh @ _mT(gVh)
    VhgV = VhgV - _mT(VhgV)
    S2 = S * S
    E = S2.unsqueeze(-2) - S2.unsqueeze(-1) + I
    gA = (UhgU * S.unsqueeze(-2) + S.unsqueeze(-1) * VhgV) / E + gS.unsqueeze(-1) * I
    if m > n:
        gA = U @ gA
        gUSinv = gU / S.unsqueeze(-2)
        gA = gA + gUSinv - U @ (_mT(U) @ gUSinv)
        return gA @ Vh
    if m < n:
        gA = gA @ Vh
        SinvgVh = gVh / S.unsqueeze(-1)
        gA = gA + SinvgVh - (SinvgVh @ _mT(Vh)) @ Vh
        return U @ gA
    return U @ (gA @ Vh)


class _SVD(Function):
    @staticmethod
    def forward(ctx, A, full):
        ctx._name = "LinalgSvdBackward0"
        U, S, Vh = _svd_raw(A, full)
        ctx.save_for_backward(U, S, Vh)
        ctx.full = full
        return U, S, Vh

    @staticmethod
    def backward(ctx, gU, gS, gVh):
        U, S, Vh = ctx.saved_tensors
        if ctx.full:                        # as torch: the first k columns / rows only
            k = S._shape[-1]
            U, gU = U.narrow(-1, 0, k), gU.narrow(-1, 0, k)
            Vh, gVh = Vh.narrow(-2, 0, k), gVh.narrow(-2, 0, k)
        return _svd_grad(gU, gS, gVh, U, S, Vh), None


class _Svdvals(Function):
    @staticmethod
    def forward(ctx, A):
        ctx._name = "LinalgSvdBackward0"
        U, S, Vh = _svd_raw(A, False)
        ctx.save_for_backward(U, Vh)
        return S

    @staticmethod
    def backward(ctx, gS):
        U, Vh = ctx.saved_tensors
        return _svd_grad(None, gS, None, U, None, Vh)


def svd(A, full_matrices=True, *, driver=None, out=None):
    """torch.linalg.svd: (U, S, Vh), S descending, by one-sided Jacobi rotations (the signs
    of U's and Vh's vectors are not LAPACK's)."""
    _matrix(A, "linalg.svd")
    return _svd_t(*_SVD.apply(A, bool(full_matrices)))


def svdvals(A, *, driver=None, out=None):
    """torch.linalg.svdvals: the singular values, descending."""
    _matrix(A, "linalg.svdvals")
    if A.requires_grad and D.is_grad_enabled():
        return _Svdvals.apply(A)
    return _svd_raw(A, False, uv=False)[1]


# ---- pinv, lstsq ----
def _pinv_raw(A, atol, rtol, hermitian):
    r, c = A._shape[-2:]
    batch = A._shape[:-2]
    nb = _prod(batch)
    P = _prim(K.K_PINV, A, r, c, nb * c * r + nb, flags=K.F_HERM if hermitian else 0,
              consts=(atol, rtol))
    return _part(P, batch + (c, r), 0), _part(P, batch, nb * c * r)


def _pinv_grad(g, pinvA, A):
    """torch's pinv_backward."""
    m, n = A._shape[-2:]
    pinvAh, gh = _mT(pinvA), _mT(g)
    if m <= n:
        K_ = gh @ pinvA
        KpinvAh = K_ @ pinvAh
        return (-_mT(pinvA @ K_) + KpinvAh - (A @ pinvA) @ KpinvAh
                + (pinvAh @ pinvA) @ (gh - K_ @ A))
    K_ = pinvA @ gh
    pinvAhK = pinvAh @ K_
    return (-_mT(K_ @ pinvA) + ((gh - A @ K_) @ pinvA) @ pinvAh + pinvAhK
            - (pinvAhK @ pinvA) @ A)


class _Pinv(Function):
    @staticmethod
    def forward(ctx, A, atol, rtol, hermitian):
        ctx._name = "LinalgPinvBackward0"
        P, _ = _pinv_raw(A, atol, rtol, hermitian)
        ctx.save_for_backward(A, P)
        return P

    @staticmethod
    def backward(ctx, g):
        A, P = ctx.saved_tensors
        return _pinv_grad(g, P, A), None, None, None


def _tolerances(A, atol, rtol, name):
    for v, what in ((atol, "atol"), (rtol, "rtol")):
        if isinstance(v, Tensor):
            raise NotImplementedError(f"{name}: {what} as a tensor is not supported (pass a "
                                      f"number)")
    eps = float(np.finfo(A._dt.np).eps)
    if rtol is None:
        rtol = eps * max(A._shape[-2:]) if (atol is None or atol <= 0) else 0.0
    return (0.0 if atol is None else atol), rtol


def pinv(A, *, atol=None, rtol=None, hermitian=False, out=None, rcond=None):
    """torch.linalg.pinv: the pseudo-inverse; singular values (|eigenvalues| if hermitian)
    at most max(atol, rtol * the largest) are dropped (torch's defaults)."""
    if not isinstance(A, Tensor) or not A._dt.is_floating_point or A.dim() < 2:
        dt = f"{_tname(A)}{{{list(A._shape)}}}" if isinstance(A, Tensor) else type(A).__name__
        raise RuntimeError(f"linalg.pinv({dt}): expected a tensor with 2 or more dimensions "
                           f"of float, double, cfloat or cdouble types")
    if rcond is not None:
        rtol = rcond
    if hermitian and A._shape[-1] != A._shape[-2]:
        _matrix(A, "linalg.pinv", square=True)
    atol, rtol = _tolerances(A, atol, rtol, "linalg.pinv")
    return _Pinv.apply(A, atol, rtol, bool(hermitian))


class _LstsqSolution(Function):
    @staticmethod
    def forward(ctx, A, B, P):
        ctx._name = "LinalgLstsqBackward0"
        ctx.save_for_backward(A, B, P)
        return P @ B

    @staticmethod
    def backward(ctx, gX):
        A, B, P = ctx.saved_tensors
        gA = _pinv_grad(gX @ _mT(B), P, A) if ctx.needs_input_grad[0] else None
        gB = _mT(P) @ gX if ctx.needs_input_grad[1] else None
        return gA, gB, None


def lstsq(A, B, rcond=None, *, driver=None, out=None):
    """torch.linalg.lstsq: (solution, residuals, rank, singular_values), the minimum-norm
    least-squares solution through the pseudo-inverse (singular values at most rcond times the
    largest dropped, rcond eps * max(m, n) by default). As torch's CPU drivers: 'gelsy' (the
    default) returns the rank and empty residuals and singular values; 'gelsd' and 'gelss'
    also the singular values and, for m > n and full rank, the residuals; 'gels' no rank, and
    residuals when m > n."""
    name = "torch.linalg.lstsq"
    _matrix(A, "linalg.lstsq")
    _tensor(B, "linalg_lstsq", "B", 2)
    if driver is None:
        driver = "gelsy"
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError(f"{name}: parameter `driver` should be one of (gels, gelsy, gelsd, "
                           f"gelss)")
    _same_dtype(A, B, "torch.linalg.lstsq")
    vec = B.dim() == A.dim() - 1
    Bm = B.unsqueeze(-1) if vec else B
    if Bm.dim() < 2 or Bm._shape[-2] != A._shape[-2]:
        raise RuntimeError(f"{name}: input.size(-2) should match other.size(-2)")
    m, n = A._shape[-2:]
    batch = A._shape[:-2]
    if rcond is None:
        rcond = float(np.finfo(A._dt.np).eps) * max(m, n)
    with D.no_grad():
        P, rank = _pinv_raw(A.detach(), 0.0, rcond, False)
    X = _LstsqSolution.apply(A, Bm, P)
    empty = zeros(0, dtype=A._dt)
    ranks = None
    if driver != "gels":
        ranks = rank.detach().numpy().astype(np.int64)      # read (a guard under compile)
    res, sv = empty, empty
    if driver in ("gelsd", "gelss"):
        sv = svdvals(A.detach())
    full = ranks is None or bool(np.all(ranks == min(m, n)))
    if driver != "gelsy" and m > n and full:
        with D.no_grad():
            res = ((A.detach() @ X.detach() - Bm.detach()) ** 2).sum(-2)
        if vec:
            res = res.squeeze(-1)
    from ..tensor import _make_np
    rank_t = _make_np(ranks.reshape(batch), D.int64) if ranks is not None else \
        zeros(0, dtype=D.int64)
    return _lstsq_t(X.squeeze(-1) if vec else X, res, rank_t, sv)


# ---- norms ----
def _dims(x, dim, name):
    nd = x.dim()
    dims = list(range(nd)) if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    out = []
    for d in dims:
        n = max(nd, 1)
        if not -n <= d < n:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, "
                             f"{n - 1}], but got {d})")
        out.append(d % n if nd else 0)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{name}: dim {out} appears multiple times in the list of dims")
    return out


def _gather_last(x, dims):
    """x with `dims` moved to the end and merged into one (a copy), and the shape of the rest
    with and without the reduced dims kept as 1s."""
    nd = x.dim()
    rest = [d for d in range(nd) if d not in dims]
    keep = tuple(1 if d in dims else x._shape[d] for d in range(nd))
    drop = tuple(x._shape[d] for d in rest)
    if nd == 0:
        return x.reshape(1), keep, drop
    perm = rest + list(dims)
    y = x.permute(*perm) if perm != list(range(nd)) else x
    return y.reshape(drop + (-1,)), keep, drop


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.linalg.vector_norm: the ord-norm of x over dim (all of it by default), of tensor
    ops (2: the norm record; inf, -inf: amax, amin of abs; 0: the count of non-zeros)."""
    name = "linalg.vector_norm"
    _tensor(x, "linalg_vector_norm", "x")
    if isinstance(ord, (str, bool)) or not isinstance(ord, (int, float)):
        raise TypeError(f"linalg_vector_norm(): argument 'ord' (position 2) must be Number, "
                        f"not {type(ord).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if not x._dt.is_floating_point:
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. "
                           f"Got {_tname(x)}")
    dims = _dims(x, dim, name)
    if dim is not None and not isinstance(dim, int) and len(dims) == 0:
        dims = list(range(x.dim()))
    y, keep, drop = _gather_last(x, dims)
    if y._shape[-1] == 0 and ord < 0:
        raise RuntimeError(f"{name}: Expected a non-empty tensor when ord is negative or inf")
    if ord == 2:
        r = y.norm(dim=-1)
    elif ord == math.inf:
        r = y.abs().amax(-1)
    elif ord == -math.inf:
        r = y.abs().amin(-1)
    elif ord == 0:
        r = y.abs().sign().sum(-1)
    elif ord == 1:
        r = y.abs().sum(-1)
    else:
        r = (y.abs() ** ord).sum(-1) ** (1.0 / ord)
    return r.reshape(keep) if keepdim else r.reshape(drop)


def _matrix_dims(A, dim, name):
    if A.dim() < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if isinstance(dim, int) or len(dim) != 2:
        raise RuntimeError(f"{name}: dim must be a 2-tuple. Got {dim}")
    d0, d1 = _dims(A, dim, name)
    if d0 == d1:
        raise RuntimeError(f"{name}: dims must be different. Got ({d0}, {d1})")
    return d0, d1


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    """torch.linalg.matrix_norm: 'fro', 'nuc' (sum of singular values), 2 and -2 (largest and
    smallest singular value), 1 and -1 (max and min column sum of |A|), inf and -inf (rows)."""
    name = "linalg.matrix_norm"
    _tensor(A, "linalg_matrix_norm")
    if dtype is not None:
        A = A.to(dtype)
    if not A._dt.is_floating_point:
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. "
                           f"Got {_tname(A)}")
    d0, d1 = _matrix_dims(A, dim, name)
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord not in ("nuc", 2, -2, 1, -1, math.inf, -math.inf):
        raise RuntimeError(f"{name}: Order {ord} not supported.")
    nd = A.dim()
    if ord in ("nuc", 2, -2):
        rest = [d for d in range(nd) if d not in (d0, d1)]
        M = A.permute(*rest, d0, d1) if rest + [d0, d1] != list(range(nd)) else A
        s = svdvals(M)
        r = s.sum(-1) if ord == "nuc" else (s.amax(-1) if ord == 2 else s.amin(-1))
        if keepdim:
            for d in sorted((d0, d1)):
                r = r.unsqueeze(d)
        return r
    over, across = (d0, d1) if ord in (1, -1) else (d1, d0)     # sum over, then extremum
    s = A.abs().sum(over, keepdim=True)
    r = s.amax(across, keepdim=True) if ord > 0 else s.amin(across, keepdim=True)
    if not keepdim:
        r = r.squeeze(max(d0, d1)).squeeze(min(d0, d1))
    return r


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.linalg.norm: a vector norm (dim an int, or ord None over everything, or a 1-D
    input) or a matrix norm (dim a 2-tuple, or a 2-D input with ord given)."""
    name = "linalg.norm"
    _tensor(A, "linalg_norm")
    if dim is not None and not isinstance(dim, int):
        dim = tuple(dim)
        if len(dim) == 1:
            dim = dim[0]
    if dim is None:
        if ord is None:
            return vector_norm(A if A.dim() <= 1 else A.reshape(-1), 2, None, False,
                               dtype=dtype).reshape((1,) * A.dim() if keepdim else ())
        if A.dim() not in (1, 2):
            raise RuntimeError(f"{name}: If dim is not specified but ord is, the input must be "
                               f"1D or 2D. Got {A.dim()}D.")
        dim = 0 if A.dim() == 1 else (-2, -1)
    if isinstance(dim, int):
        if isinstance(ord, str):
            raise RuntimeError(f"{name}: Order {ord} not supported.")
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) != 2:
        raise RuntimeError(f"{name}: If dim is specified, it must be of length 1 or 2. Got "
                           f"{list(dim)}")
    return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)


def cond(A, p=None, *, out=None):
    """torch.linalg.cond: the ratio of the largest to the smallest singular value (p None or
    2; -2 the inverse ratio), or norm(A, p) * norm(inv(A), p) ('fro', 'nuc', 1, -1, inf,
    -inf; inf for an exactly singular A)."""
    name = "linalg.cond"
    _matrix(A, name)
    if p is None or p == 2 or p == -2:
        s = svdvals(A)
        hi, lo = s.narrow(-1, 0, 1).squeeze(-1), s.narrow(-1, s._shape[-1] - 1, 1).squeeze(-1)
        return hi / lo if p != -2 else lo / hi
    if p not in ("fro", "nuc", 1, -1, math.inf, -math.inf):
        raise RuntimeError(f"{name}: Order {p} not supported.")
    _matrix(A, name, square=True)
    return matrix_norm(A, p) * matrix_norm(_inv_nocheck(A), p)


class _InvNoCheck(Function):
    @staticmethod
    def forward(ctx, A):
        ctx._name = "LinalgInvExBackward0"
        Ai = _inv_raw(A)
        ctx.save_for_backward(Ai)
        return Ai

    backward = _Inv.backward


def _inv_nocheck(A):
    return _InvNoCheck.apply(A)


# ---- small helpers torch.linalg also has ----
def matmul(input, other, *, out=None):
    """torch.linalg.matmul: an alias of torch.matmul."""
    return input @ other


def vecdot(x, y, *, dim=-1, out=None):
    """torch.linalg.vecdot: the dot product along dim (real tensors)."""
    return (x * y).sum(dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """torch.linalg.diagonal (a copy)."""
    nd = A.dim()
    d1, d2 = dim1 % nd, dim2 % nd
    rest = [d for d in range(nd) if d not in (d1, d2)]
    M = A.permute(*rest, d1, d2)
    r, c = M._shape[-2:]
    n = max(0, min(r, c - offset) if offset >= 0 else min(r + offset, c))
    st = _contiguous_strides(M._shape)
    shape = M._shape[:-2] + (n,)
    base = offset * st[-1] if offset >= 0 else -offset * st[-2]
    M = M.contiguous()
    return _strided(M, shape, st[:-2] + [st[-2] + st[-1]], base if n else 0,
                    "DiagonalBackward0")


# ---- the top-level functions and Tensor methods torch has ----
def _inverse(input, *, out=None):
    """torch.inverse: linalg.inv."""
    return inv(input)


def _det(input):
    return det(input)


def _slogdet(input):
    """torch.slogdet: (sign, logabsdet)."""
    return _slogdet_top(*slogdet(input))


def _logdet(input):
    """torch.logdet: log det(A); nan for a negative determinant, -inf for a singular A."""
    _matrix(input, "linalg.slogdet", square=True)
    sign, logabs = _Slogdet.apply(input)
    return logabs + sign.log()


def _pinverse(input, rcond=1e-15):
    """torch.pinverse: linalg.pinv with rtol=rcond."""
    return pinv(input, rtol=rcond)


def _cholesky_solve(B, L, upper=False, *, out=None):
    """torch.cholesky_solve: X with A X = B for A = L L^T (upper: A = U^T U)."""
    _matrix(B, "linalg.cholesky_solve", arg="B")
    _matrix(L, "linalg.cholesky_solve", square=True, arg="L")
    if upper:
        Y = solve_triangular(_mT(L), B, upper=False)
        return solve_triangular(L, Y, upper=True)
    Y = solve_triangular(L, B, upper=False)
    return solve_triangular(_mT(L), Y, upper=True)


def _tensor_cholesky(self, upper=False):
    """Tensor.cholesky (torch.cholesky, deprecated in torch): linalg.cholesky."""
    return cholesky(self, upper=upper)


TOP_LEVEL = {"inverse": _inverse, "det": _det, "slogdet": _slogdet, "logdet": _logdet,
             "pinverse": _pinverse, "cholesky_solve": _cholesky_solve,
             "cholesky": _tensor_cholesky}

for _name, _fn in (("det", _det), ("logdet", _logdet), ("slogdet", _slogdet),
                   ("inverse", _inverse), ("cholesky", _tensor_cholesky),
                   ("pinverse", _pinverse), ("cholesky_solve", _cholesky_solve)):
    if not hasattr(Tensor, _name):
        setattr(Tensor, _name, _fn)
