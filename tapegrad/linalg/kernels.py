"""Numba kernels of the OP_LINALG record: factorizations and solves of batches of matrices.

One forward kernel, ``linalg_fwd(A, B, C, cb, O, M, m)``, dispatches on the record's metadata
``M[m:] = [kind, nb, r, c, q, flags, offsets of A's nb matrices..., offsets of B's...]``: A and
B are raveled views of their slots (B is A when the kind reads no B), C the immediates and cb
the index of the kind's numbers in C (-1: none), O the packed output. The work runs in float64
whatever the input dtype (results are rounded once, when written to O). The record has no
backward: the Python functions of tapegrad.linalg differentiate it with tensor ops.

A kernel cannot raise inside a compiled replay: failures (a zero pivot, a matrix that is not
positive-definite) are written to the output's status and info elements, which the Python side
reads (eagerly it raises LinAlgError; under tapegrad.compile that read is a guard, so a replay
whose data fails records again, eagerly, and raises). Shapes are checked in Python before a
record is made; no bounds are checked here.
"""
import math

import numpy as np

from ..kernels import jit, rule

(K_SOLVE, K_INV, K_DET, K_CHOL, K_TRSOLVE, K_QR, K_EIGH, K_SVD, K_PINV) = range(9)
NAMES = ("solve", "inv", "det", "cholesky", "solve_triangular", "qr", "eigh", "svd", "pinv")

F_CHECK = 1         # solve, inv, cholesky: fill the status and info elements
F_UPPER = 2         # solve_triangular: A is upper triangular; eigh: read the upper triangle
F_UNIT = 4          # solve_triangular: A has a unit diagonal
F_FULL = 8          # svd: full_matrices
F_UV = 16           # svd: compute U and Vh (else the singular values only)
F_HERM = 32         # pinv: hermitian (through eigh)
QR_REDUCED, QR_COMPLETE, QR_R = 0, 1, 2

EPS = 2.220446049250313e-16
MAX_SWEEPS = 60


@rule
def _load(A, o, r, c, W):
    for i in range(r):
        for j in range(c):
            W[i, j] = A[o + i * c + j]


@rule
def _load_t(A, o, r, c, W):
    """W = the transpose of the r x c matrix at A[o:]."""
    for i in range(r):
        for j in range(c):
            W[j, i] = A[o + i * c + j]


@rule
def _lu(W, n, piv):
    """LU with partial pivoting in place (row k swapped with piv[k]); (info, permutation
    sign), info the 1-based index of the first zero pivot (LAPACK's getrf), 0 if none."""
    info = 0
    sgn = 1.0
    for k in range(n):
        p = k
        mx = abs(W[k, k])
        for i in range(k + 1, n):
            if abs(W[i, k]) > mx:
                mx = abs(W[i, k])
                p = i
        piv[k] = p
        if p != k:
            sgn = -sgn
            for j in range(n):
                t = W[k, j]
                W[k, j] = W[p, j]
                W[p, j] = t
        d = W[k, k]
        if d == 0.0:
            if info == 0:
                info = k + 1
            continue
        for i in range(k + 1, n):
            f = W[i, k] / d
            W[i, k] = f
            if f != 0.0:
                for j in range(k + 1, n):
                    W[i, j] -= f * W[k, j]
    return info, sgn


@rule
def _lu_solve(W, n, piv, X, p):
    """X = A^-1 X for the factors of _lu (X: n x p)."""
    for k in range(n):
        if piv[k] != k:
            for j in range(p):
                t = X[k, j]
                X[k, j] = X[piv[k], j]
                X[piv[k], j] = t
    for i in range(n):
        for k in range(i):
            f = W[i, k]
            if f != 0.0:
                for j in range(p):
                    X[i, j] -= f * X[k, j]
    for i in range(n - 1, -1, -1):
        for k in range(i + 1, n):
            f = W[i, k]
            if f != 0.0:
                for j in range(p):
                    X[i, j] -= f * X[k, j]
        d = W[i, i]
        for j in range(p):
            X[i, j] /= d


@rule
def _solve(A, B, O, M, m, kind):
    nb, n, p, fl = M[m + 1], M[m + 2], M[m + 3], M[m + 5]
    W = np.empty((n, n))
    X = np.empty((n, p))
    piv = np.empty(n, np.int64)
    status = 0
    base = 1 + nb
    for bi in range(nb):
        _load(A, M[m + 6 + bi], n, n, W)
        info, _ = _lu(W, n, piv)
        if kind == K_INV:
            for i in range(n):
                for j in range(p):
                    X[i, j] = 1.0 if i == j else 0.0
        else:
            _load(B, M[m + 6 + nb + bi], n, p, X)
        _lu_solve(W, n, piv, X, p)
        o = base + bi * n * p
        for i in range(n):
            for j in range(p):
                O[o + i * p + j] = X[i, j]
        if fl & F_CHECK:
            O[1 + bi] = info
            if info != 0:
                status += 1
    O[0] = status


@rule
def _det(A, O, M, m):
    nb, n = M[m + 1], M[m + 2]
    W = np.empty((n, n))
    piv = np.empty(n, np.int64)
    for bi in range(nb):
        _load(A, M[m + 6 + bi], n, n, W)
        info, sgn = _lu(W, n, piv)
        det = sgn
        logabs = 0.0
        for i in range(n):
            d = W[i, i]
            det *= d
            if d < 0:
                sgn = -sgn
            if d == 0.0:
                sgn = 0.0
                logabs = -math.inf
            elif logabs != -math.inf:
                logabs += math.log(abs(d))
        O[bi] = det
        O[nb + bi] = sgn
        O[2 * nb + bi] = logabs


@rule
def _cholesky(A, O, M, m):
    """L with A = L L^T from A's lower triangle; info the order of the first leading minor
    that is not positive-definite (LAPACK's potrf), the rest of L NaN then."""
    nb, n, fl = M[m + 1], M[m + 2], M[m + 5]
    L = np.zeros((n, n))
    status = 0
    base = 1 + nb
    for bi in range(nb):
        o = M[m + 6 + bi]
        info = 0
        for i in range(n):
            for j in range(n):
                L[i, j] = 0.0
        for j in range(n):
            s = A[o + j * n + j]
            for k in range(j):
                s -= L[j, k] * L[j, k]
            if not s > 0.0:                     # also NaN
                info = j + 1
                break
            d = math.sqrt(s)
            L[j, j] = d
            for i in range(j + 1, n):
                t = A[o + i * n + j]
                for k in range(j):
                    t -= L[i, k] * L[j, k]
                L[i, j] = t / d
        if info != 0:
            for i in range(n):
                for j in range(i + 1):
                    if i >= info - 1:
                        L[i, j] = math.nan
        ob = base + bi * n * n
        for i in range(n):
            for j in range(n):
                O[ob + i * n + j] = L[i, j]
        if fl & F_CHECK:
            O[1 + bi] = info
            if info != 0:
                status += 1
    O[0] = status


@rule
def _trsolve(A, B, O, M, m):
    """X = A^-1 B for triangular A (only its triangle is read)."""
    nb, n, p, fl = M[m + 1], M[m + 2], M[m + 3], M[m + 5]
    upper, unit = (fl & F_UPPER) != 0, (fl & F_UNIT) != 0
    X = np.empty((n, p))
    for bi in range(nb):
        oa = M[m + 6 + bi]
        _load(B, M[m + 6 + nb + bi], n, p, X)
        for s in range(n):
            i = n - 1 - s if upper else s
            lo, hi = (i + 1, n) if upper else (0, i)
            for k in range(lo, hi):
                f = np.float64(A[oa + i * n + k])
                if f != 0.0:
                    for j in range(p):
                        X[i, j] -= f * X[k, j]
            if not unit:
                d = np.float64(A[oa + i * n + i])
                for j in range(p):
                    X[i, j] /= d
        o = bi * n * p
        for i in range(n):
            for j in range(p):
                O[o + i * p + j] = X[i, j]


@rule
def _householder(W, r, c, tau):
    """Householder QR in place (LAPACK's geqrf and dlarfg conventions, so R's signs are
    LAPACK's): R in the upper triangle, the reflectors' tails below it."""
    k = min(r, c)
    for j in range(k):
        alpha = W[j, j]
        xn = 0.0
        for i in range(j + 1, r):
            xn += W[i, j] * W[i, j]
        xn = math.sqrt(xn)
        if xn == 0.0:
            tau[j] = 0.0
            continue
        beta = -math.copysign(math.hypot(alpha, xn), alpha)
        tau[j] = (beta - alpha) / beta
        scale = 1.0 / (alpha - beta)
        for i in range(j + 1, r):
            W[i, j] *= scale
        W[j, j] = beta
        for cc in range(j + 1, c):
            s = W[j, cc]
            for i in range(j + 1, r):
                s += W[i, j] * W[i, cc]
            s *= tau[j]
            W[j, cc] -= s
            for i in range(j + 1, r):
                W[i, cc] -= s * W[i, j]


@rule
def _form_q(W, r, c, tau, Q, kq):
    """Q's first kq columns (Q = H_0 H_1 ... H_{k-1}) from _householder's reflectors."""
    k = min(r, c)
    for i in range(r):
        for j in range(kq):
            Q[i, j] = 1.0 if i == j else 0.0
    for j in range(k - 1, -1, -1):
        t = tau[j]
        if t == 0.0:
            continue
        for cc in range(kq):
            s = Q[j, cc]
            for i in range(j + 1, r):
                s += W[i, j] * Q[i, cc]
            s *= t
            Q[j, cc] -= s
            for i in range(j + 1, r):
                Q[i, cc] -= s * W[i, j]


@rule
def _qr(A, O, M, m):
    nb, r, c, mode = M[m + 1], M[m + 2], M[m + 3], M[m + 4]
    k = min(r, c)
    kq = r if mode == QR_COMPLETE else k
    rr = r if mode == QR_COMPLETE else k
    nq = 0 if mode == QR_R else r * kq
    W = np.empty((r, c))
    Q = np.empty((r, kq))
    tau = np.empty(k)
    for bi in range(nb):
        _load(A, M[m + 6 + bi], r, c, W)
        _householder(W, r, c, tau)
        if mode != QR_R:
            _form_q(W, r, c, tau, Q, kq)
            o = bi * nq
            for i in range(r):
                for j in range(kq):
                    O[o + i * kq + j] = Q[i, j]
        o = nb * nq + bi * rr * c
        for i in range(rr):
            for j in range(c):
                O[o + i * c + j] = W[i, j] if j >= i else 0.0


@rule
def _jacobi_eigh(S, n, V, w):
    """Eigenvalues (ascending, in w) and eigenvectors (V's columns) of symmetric S, by cyclic
    Jacobi rotations; S is overwritten."""
    for i in range(n):
        for j in range(n):
            V[i, j] = 1.0 if i == j else 0.0
    for _ in range(MAX_SWEEPS):
        off = 0.0
        total = 0.0
        for i in range(n):
            for j in range(n):
                if i != j:
                    off += S[i, j] * S[i, j]
                total += S[i, j] * S[i, j]
        if off <= (EPS * EPS) * total * 1e-2 or off == 0.0:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = S[p, q]
                if apq == 0.0:
                    continue
                theta = (S[q, q] - S[p, p]) / (2.0 * apq)
                if abs(theta) > 1e150:
                    t = 0.5 / theta
                else:
                    t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                    if theta < 0:
                        t = -t
                cs = 1.0 / math.sqrt(t * t + 1.0)
                sn = t * cs
                for k in range(n):
                    skp, skq = S[k, p], S[k, q]
                    S[k, p] = cs * skp - sn * skq
                    S[k, q] = sn * skp + cs * skq
                for k in range(n):
                    spk, sqk = S[p, k], S[q, k]
                    S[p, k] = cs * spk - sn * sqk
                    S[q, k] = sn * spk + cs * sqk
                S[p, q] = 0.0
                S[q, p] = 0.0
                for k in range(n):
                    vkp, vkq = V[k, p], V[k, q]
                    V[k, p] = cs * vkp - sn * vkq
                    V[k, q] = sn * vkp + cs * vkq
    for i in range(n):
        w[i] = S[i, i]
    for i in range(n):                          # selection sort, ascending
        b = i
        for j in range(i + 1, n):
            if w[j] < w[b]:
                b = j
        if b != i:
            t = w[i]
            w[i] = w[b]
            w[b] = t
            for k in range(n):
                t = V[k, i]
                V[k, i] = V[k, b]
                V[k, b] = t


@rule
def _load_sym(A, o, n, upper, S):
    for i in range(n):
        for j in range(i + 1):
            v = A[o + j * n + i] if upper else A[o + i * n + j]
            S[i, j] = v
            S[j, i] = v


@rule
def _eigh(A, O, M, m):
    nb, n, fl = M[m + 1], M[m + 2], M[m + 5]
    S = np.empty((n, n))
    V = np.empty((n, n))
    w = np.empty(n)
    for bi in range(nb):
        _load_sym(A, M[m + 6 + bi], n, (fl & F_UPPER) != 0, S)
        _jacobi_eigh(S, n, V, w)
        for i in range(n):
            O[bi * n + i] = w[i]
        o = nb * n + bi * n * n
        for i in range(n):
            for j in range(n):
                O[o + i * n + j] = V[i, j]


@rule
def _complete(U, r, have, full):
    """Columns have..full-1 of U (r x full) made orthonormal to the columns before them (and
    each other): Gram-Schmidt, twice, over the standard basis vectors."""
    e = 0
    for col in range(have, full):
        while e < r:
            for i in range(r):
                U[i, col] = 1.0 if i == e else 0.0
            e += 1
            for _ in range(2):
                for k in range(col):
                    d = 0.0
                    for i in range(r):
                        d += U[i, k] * U[i, col]
                    for i in range(r):
                        U[i, col] -= d * U[i, k]
            nrm = 0.0
            for i in range(r):
                nrm += U[i, col] * U[i, col]
            nrm = math.sqrt(nrm)
            if nrm > 0.5:
                for i in range(r):
                    U[i, col] /= nrm
                break


@rule
def _jacobi_svd(W, r, c, U, s, V, ucols):
    """One-sided Jacobi SVD of W (r x c, r >= c; overwritten): singular values s descending,
    V (c x c) and U's first c columns (ucols == r: completed to an orthonormal r x r)."""
    for i in range(c):
        for j in range(c):
            V[i, j] = 1.0 if i == j else 0.0
    for _ in range(MAX_SWEEPS):
        rotated = False
        for p in range(c - 1):
            for q in range(p + 1, c):
                a = 0.0
                b = 0.0
                g = 0.0
                for i in range(r):
                    a += W[i, p] * W[i, p]
                    b += W[i, q] * W[i, q]
                    g += W[i, p] * W[i, q]
                if g == 0.0 or abs(g) <= EPS * math.sqrt(a * b):
                    continue
                rotated = True
                zeta = (b - a) / (2.0 * g)
                if abs(zeta) > 1e150:
                    t = 0.5 / zeta
                else:
                    t = 1.0 / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                    if zeta < 0:
                        t = -t
                cs = 1.0 / math.sqrt(1.0 + t * t)
                sn = cs * t
                for i in range(r):
                    wp, wq = W[i, p], W[i, q]
                    W[i, p] = cs * wp - sn * wq
                    W[i, q] = sn * wp + cs * wq
                for i in range(c):
                    vp, vq = V[i, p], V[i, q]
                    V[i, p] = cs * vp - sn * vq
                    V[i, q] = sn * vp + cs * vq
        if not rotated:
            break
    for j in range(c):
        t = 0.0
        for i in range(r):
            t += W[i, j] * W[i, j]
        s[j] = math.sqrt(t)
    for i in range(c):                          # selection sort, descending
        b = i
        for j in range(i + 1, c):
            if s[j] > s[b]:
                b = j
        if b != i:
            t = s[i]
            s[i] = s[b]
            s[b] = t
            for k in range(r):
                t = W[k, i]
                W[k, i] = W[k, b]
                W[k, b] = t
            for k in range(c):
                t = V[k, i]
                V[k, i] = V[k, b]
                V[k, b] = t
    have = c
    for j in range(c):
        if s[j] > 0.0 and s[j] > EPS * s[0] * 1e-3:
            for i in range(r):
                U[i, j] = W[i, j] / s[j]
        else:
            have = j
            break
    _complete(U, r, have, ucols)


@rule
def _svd_one(A, o, r, c, W, U, s, V, ucols):
    """The SVD of the r x c matrix at A[o:] as (tall) r >= c or the transpose of a wide one:
    returns whether it was transposed (U and V then swap)."""
    if r >= c:
        _load(A, o, r, c, W)
        _jacobi_svd(W, r, c, U, s, V, ucols)
        return False
    _load_t(A, o, r, c, W)
    _jacobi_svd(W, c, r, U, s, V, ucols)
    return True


@rule
def _svd(A, O, M, m):
    nb, r, c, fl = M[m + 1], M[m + 2], M[m + 3], M[m + 5]
    k = min(r, c)
    big = max(r, c)
    full = (fl & F_FULL) != 0
    uv = (fl & F_UV) != 0
    ku = r if full else k               # U: r x ku, Vh: kv x c
    kv = c if full else k
    W = np.empty((big, k))
    U = np.empty((big, big))
    V = np.empty((k, k))
    s = np.empty(k)
    nu = r * ku if uv else 0
    nv = kv * c if uv else 0
    for bi in range(nb):
        t = _svd_one(A, M[m + 6 + bi], r, c, W, U, s, V, big if (full and uv) else k)
        o = nb * nu
        for j in range(k):
            O[o + bi * k + j] = s[j]
        if not uv:
            continue
        ou = bi * nu
        ov = nb * nu + nb * k + bi * nv
        # tall: A = U S V^T; wide (transposed): A^T = U S V^T, so A's U is V, its Vh U^T
        for i in range(r):
            for j in range(ku):
                O[ou + i * ku + j] = V[i, j] if t else U[i, j]
        for i in range(kv):
            for j in range(c):
                O[ov + i * c + j] = U[j, i] if t else V[j, i]


@rule
def _pinv(A, C, cb, O, M, m):
    """The pseudo-inverse (c x r) of each matrix, singular values (or eigenvalues' absolute
    values) above max(atol, rtol * largest) inverted, the rest dropped; then the count kept
    (the rank) of each. atol and rtol are C[cb], C[cb + 1]."""
    nb, r, c, fl = M[m + 1], M[m + 2], M[m + 3], M[m + 5]
    atol, rtol = np.float64(C[cb]), np.float64(C[cb + 1])
    k = min(r, c)
    big = max(r, c)
    herm = (fl & F_HERM) != 0
    W = np.empty((big, k))
    U = np.empty((big, big))
    V = np.empty((k, k))
    s = np.empty(k)
    for bi in range(nb):
        o = M[m + 6 + bi]
        if herm:
            _load_sym(A, o, r, False, W)
            _jacobi_eigh(W, r, V, s)
            top = 0.0
            for j in range(k):
                top = max(top, abs(s[j]))
            tol = max(atol, rtol * top)
            rank = 0
            ob = bi * c * r
            for i in range(c):
                for j in range(r):
                    t = 0.0
                    for q in range(k):
                        if abs(s[q]) > tol:
                            t += V[i, q] * V[j, q] / s[q]
                    O[ob + i * r + j] = t
            for q in range(k):
                if abs(s[q]) > tol:
                    rank += 1
        else:
            tr = _svd_one(A, o, r, c, W, U, s, V, k)
            tol = max(atol, rtol * s[0]) if k > 0 else atol
            rank = 0
            for q in range(k):
                if s[q] > tol:
                    rank += 1
            ob = bi * c * r
            # P = V diag(1/s) U^T (with the transposed case's U and V swapped)
            for i in range(c):
                for j in range(r):
                    t = 0.0
                    for q in range(rank):
                        if tr:
                            t += U[i, q] * V[j, q] / s[q]
                        else:
                            t += V[i, q] * U[j, q] / s[q]
                    O[ob + i * r + j] = t
        O[nb * c * r + bi] = rank


@jit
def linalg_fwd(A, B, C, cb, O, M, m):
    kind = M[m]
    if kind == K_SOLVE or kind == K_INV:
        _solve(A, B, O, M, m, kind)
    elif kind == K_DET:
        _det(A, O, M, m)
    elif kind == K_CHOL:
        _cholesky(A, O, M, m)
    elif kind == K_TRSOLVE:
        _trsolve(A, B, O, M, m)
    elif kind == K_QR:
        _qr(A, O, M, m)
    elif kind == K_EIGH:
        _eigh(A, O, M, m)
    elif kind == K_SVD:
        _svd(A, O, M, m)
    elif kind == K_PINV:
        _pinv(A, C, cb, O, M, m)
