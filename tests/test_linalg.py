"""tapegrad.linalg: values against NumPy, gradients against finite differences, values,
gradients and errors against torch, batching, and compiled (replayed and specialized) steps."""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import gradcheck
from tapegrad.ops import DIFF, OP_LINALG
from tapegrad.tape import TAPE

DTYPES = [(tg.float64, 1e-10), (tg.float32, 2e-4)]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _spd(rng, n, batch=()):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _t(a, dt=tg.float64, rg=False):
    return tg.tensor(a, dtype=dt, requires_grad=rg)


# ---- values against NumPy ----
@pytest.mark.parametrize("dt,tol", DTYPES)
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_solve_inv_det_slogdet_match_numpy(dt, tol, batch):
    rng = _rng(1)
    a = rng.normal(size=batch + (4, 4)) + 3 * np.eye(4)
    b = rng.normal(size=batch + (4, 2))
    A, B = _t(a, dt), _t(b, dt)
    np.testing.assert_allclose(tg.linalg.solve(A, B).numpy(), np.linalg.solve(a, b), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(tg.linalg.inv(A).numpy(), np.linalg.inv(a), rtol=tol, atol=tol)
    np.testing.assert_allclose(tg.linalg.det(A).numpy(), np.linalg.det(a), rtol=tol, atol=tol)
    sign, logabs = tg.linalg.slogdet(A)
    ns, nl = np.linalg.slogdet(a)
    np.testing.assert_allclose(sign.numpy(), ns)
    np.testing.assert_allclose(logabs.numpy(), nl, rtol=tol, atol=tol)
    assert tg.linalg.det(A).dtype is dt and tg.linalg.det(A).shape == batch


def test_solve_broadcasts_batches_and_vectors():
    rng = _rng(2)
    a = rng.normal(size=(2, 3, 3)) + 3 * np.eye(3)
    for b in (rng.normal(size=(3,)), rng.normal(size=(2, 3)), rng.normal(size=(3, 2)),
              rng.normal(size=(4, 1, 3, 2))):
        x = tg.linalg.solve(_t(a), _t(b))
        if b.ndim == 1 or b.shape == (2, 3):        # torch's vector rule
            ref = np.linalg.solve(a, np.broadcast_to(b, (2, 3))[..., None])[..., 0]
        else:
            ref = np.linalg.solve(a, b)
        assert x.shape == ref.shape
        np.testing.assert_allclose(x.numpy(), ref, rtol=1e-10, atol=1e-12)
    c = rng.normal(size=(4, 3))
    x = tg.linalg.solve(_t(a), _t(c), left=False)                 # X A = C
    np.testing.assert_allclose(x.numpy() @ a, np.broadcast_to(c, (2, 4, 3)), atol=1e-12)


@pytest.mark.parametrize("dt,tol", DTYPES)
def test_cholesky_and_triangular_solves(dt, tol):
    rng = _rng(3)
    s = _spd(rng, 4, (2,))
    L = tg.linalg.cholesky(_t(s, dt))
    np.testing.assert_allclose(L.numpy(), np.linalg.cholesky(s), rtol=tol, atol=tol)
    U = tg.linalg.cholesky(_t(s, dt), upper=True)
    np.testing.assert_allclose(U.numpy(), np.swapaxes(np.linalg.cholesky(s), -1, -2), rtol=tol,
                               atol=tol)
    b = rng.normal(size=(2, 4, 3))
    lo = np.linalg.cholesky(s)
    x = tg.linalg.solve_triangular(_t(lo, dt), _t(b, dt), upper=False)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(lo, b), rtol=tol, atol=tol)
    up = np.swapaxes(lo, -1, -2)
    x = tg.linalg.solve_triangular(_t(up, dt), _t(b, dt), upper=True)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(up, b), rtol=tol, atol=tol)
    unit = np.tril(rng.normal(size=(4, 4)), -1) + np.eye(4)
    junk = unit + np.triu(rng.normal(size=(4, 4)))          # only the strict lower part is read
    x = tg.linalg.solve_triangular(_t(junk, dt), _t(b, dt), upper=False, unitriangular=True)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(unit, b), rtol=tol, atol=tol)
    c = rng.normal(size=(3, 4))
    x = tg.linalg.solve_triangular(_t(up[0], dt), _t(c, dt), upper=True, left=False)
    np.testing.assert_allclose(x.numpy(), c @ np.linalg.inv(up[0]), rtol=tol, atol=tol)
    x = tg.cholesky_solve(_t(b, dt), L)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(s, b), rtol=tol, atol=tol)


@pytest.mark.parametrize("dt,tol", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 5, 3)])
def test_qr_matches_numpy(dt, tol, shape):
    a = _rng(4).normal(size=shape)
    for mode in ("reduced", "complete", "r"):
        Q, R = tg.linalg.qr(_t(a, dt), mode=mode)
        nq, nr = np.linalg.qr(a, mode=mode) if mode != "r" else (None, np.linalg.qr(a, "r"))
        np.testing.assert_allclose(R.numpy(), nr, rtol=tol, atol=tol)    # LAPACK's signs
        if mode == "r":
            assert Q.shape == (0,)
            continue
        np.testing.assert_allclose(Q.numpy(), nq, rtol=tol, atol=tol)
        np.testing.assert_allclose(Q.numpy() @ R.numpy(), a, rtol=tol, atol=tol)


@pytest.mark.parametrize("dt,tol", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 4, 2)])
def test_svd_matches_numpy(dt, tol, shape):
    a = _rng(5).normal(size=shape)
    for full in (True, False):
        U, S, Vh = tg.linalg.svd(_t(a, dt), full_matrices=full)
        nu, ns, nvh = np.linalg.svd(a, full_matrices=full)
        assert U.shape == nu.shape and S.shape == ns.shape and Vh.shape == nvh.shape
        np.testing.assert_allclose(S.numpy(), ns, rtol=tol, atol=tol)
        k = ns.shape[-1]
        u, v = U.numpy()[..., :k], Vh.numpy()[..., :k, :]
        np.testing.assert_allclose((u * S.numpy()[..., None, :]) @ v, a, rtol=tol, atol=tol)
        for q in (U.numpy(), np.swapaxes(Vh.numpy(), -1, -2)):     # orthonormal columns
            eye = np.broadcast_to(np.eye(q.shape[-1]), q.shape[:-2] + (q.shape[-1],) * 2)
            np.testing.assert_allclose(np.swapaxes(q, -1, -2) @ q, eye, atol=10 * tol)
    np.testing.assert_allclose(tg.linalg.svdvals(_t(a, dt)).numpy(), np.linalg.svd(a)[1],
                               rtol=tol, atol=tol)


def test_svd_of_a_rank_deficient_matrix_completes_u():
    a = np.outer([1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5])           # rank 1
    U, S, Vh = tg.linalg.svd(_t(a))
    np.testing.assert_allclose(S.numpy(), np.linalg.svd(a)[1], atol=1e-12)
    np.testing.assert_allclose(U.numpy().T @ U.numpy(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Vh.numpy() @ Vh.numpy().T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(U.numpy()[:, :3] * S.numpy() @ Vh.numpy(), a, atol=1e-12)


@pytest.mark.parametrize("dt,tol", DTYPES)
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_matches_numpy(dt, tol, uplo):
    rng = _rng(6)
    a = rng.normal(size=(3, 5, 5))
    w, V = tg.linalg.eigh(_t(a, dt), UPLO=uplo)
    sym = np.tril(a) + np.swapaxes(np.tril(a, -1), -1, -2) if uplo == "L" else \
        np.triu(a) + np.swapaxes(np.triu(a, 1), -1, -2)
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(sym), rtol=tol, atol=tol)
    v = V.numpy()
    np.testing.assert_allclose(sym @ v, v * w.numpy()[..., None, :], rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, np.broadcast_to(np.eye(5), v.shape),
                               atol=10 * tol)
    np.testing.assert_allclose(tg.linalg.eigvalsh(_t(a, dt), uplo).numpy(), w.numpy())


@pytest.mark.parametrize("dt,tol", DTYPES)
def test_pinv_and_lstsq_match_numpy(dt, tol):
    rng = _rng(7)
    for shape in ((5, 3), (3, 5), (2, 4, 4)):
        a = rng.normal(size=shape)
        np.testing.assert_allclose(tg.linalg.pinv(_t(a, dt)).numpy(), np.linalg.pinv(a),
                                   rtol=tol, atol=tol)
    low = np.outer(rng.normal(size=5), rng.normal(size=4))         # rank 1: dropped values
    # float32 rounds a rank-1 matrix to one of full rank, with singular values near eps: a
    # tolerance above them (float64: torch's default)
    kw = {} if dt is tg.float64 else {"rtol": 1e-4}
    np.testing.assert_allclose(tg.linalg.pinv(_t(low, dt), **kw).numpy(),
                               np.linalg.pinv(low), rtol=tol, atol=tol)
    s = rng.normal(size=(4, 4))
    s = s + s.T
    np.testing.assert_allclose(tg.linalg.pinv(_t(s, dt), hermitian=True).numpy(),
                               np.linalg.pinv(s, hermitian=True), rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(tg.pinverse(_t(low), 1e-15).numpy(), np.linalg.pinv(low, 1e-15),
                               rtol=1e-10, atol=1e-10)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    r = tg.linalg.lstsq(_t(a, dt), _t(b, dt))
    x, res, rank, sv = np.linalg.lstsq(a, b, rcond=None)
    np.testing.assert_allclose(r.solution.numpy(), x, rtol=tol, atol=tol)
    assert r.rank.dtype is tg.int64 and int(r.rank) == rank
    assert r.residuals.shape == (0,) and r.singular_values.shape == (0,)      # gelsy
    r = tg.linalg.lstsq(_t(a, dt), _t(b, dt), driver="gelsd")
    np.testing.assert_allclose(r.residuals.numpy(), res, rtol=tol, atol=tol)
    np.testing.assert_allclose(r.singular_values.numpy(), sv, rtol=tol, atol=tol)
    r = tg.linalg.lstsq(_t(low, dt), _t(rng.normal(size=(5,)), dt),
                        None if dt is tg.float64 else 1e-4)
    assert int(r.rank) == 1 and r.solution.shape == (4,)


@pytest.mark.parametrize("dt,tol", DTYPES)
def test_norms_match_numpy(dt, tol):
    rng = _rng(8)
    a = rng.normal(size=(2, 3, 4))
    A = _t(a, dt)
    for ord_ in ("fro", "nuc", 2, -2, 1, -1, math.inf, -math.inf):
        ref = np.linalg.norm(a, ord_, axis=(-2, -1))
        np.testing.assert_allclose(tg.linalg.matrix_norm(A, ord_).numpy(), ref, rtol=tol,
                                   atol=tol)
        ref = np.linalg.norm(a, ord_, axis=(0, 2), keepdims=True)
        np.testing.assert_allclose(tg.linalg.matrix_norm(A, ord_, dim=(0, 2),
                                                         keepdim=True).numpy(), ref, rtol=tol,
                                   atol=tol)
    for ord_ in (2, 1, 0, 3, 0.5, math.inf, -math.inf):
        ref = np.linalg.norm(a.reshape(-1), ord_)
        np.testing.assert_allclose(tg.linalg.vector_norm(A, ord_).numpy(), ref, rtol=tol,
                                   atol=tol)
        ref = np.linalg.norm(a, ord_, axis=1)
        np.testing.assert_allclose(tg.linalg.vector_norm(A, ord_, dim=1).numpy(), ref,
                                   rtol=tol, atol=tol)
    np.testing.assert_allclose(tg.linalg.norm(A).numpy(), np.linalg.norm(a), rtol=tol)
    np.testing.assert_allclose(tg.linalg.norm(A[0], "nuc").numpy(), np.linalg.norm(a[0], "nuc"),
                               rtol=tol)
    np.testing.assert_allclose(tg.linalg.norm(A, dim=(1, 2)).numpy(),
                               np.linalg.norm(a, axis=(1, 2)), rtol=tol)
    s = a[0, :3, :3] + 2 * np.eye(3)
    for p in (None, 2, -2, "fro", "nuc", 1, -1, math.inf, -math.inf):
        np.testing.assert_allclose(tg.linalg.cond(_t(s, dt), p).numpy(), np.linalg.cond(s, p),
                                   rtol=10 * tol)


def test_named_tuples_methods_and_aliases():
    rng = _rng(9)
    a = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    A = _t(a)
    r = tg.linalg.slogdet(A)
    assert type(r).__name__ == "linalg_slogdet" and r._fields == ("sign", "logabsdet")
    assert type(tg.slogdet(A)).__name__ == "slogdet"
    assert tg.linalg.qr(A)._fields == ("Q", "R")
    assert tg.linalg.svd(A)._fields == ("U", "S", "Vh")
    assert tg.linalg.eigh(A)._fields == ("eigenvalues", "eigenvectors")
    assert tg.linalg.lstsq(A, A)._fields == ("solution", "residuals", "rank", "singular_values")
    s = _spd(rng, 3)
    for x, ref in ((A.det(), np.linalg.det(a)), (tg.det(A), np.linalg.det(a)),
                   (A.inverse(), np.linalg.inv(a)), (tg.inverse(A), np.linalg.inv(a)),
                   (_t(s).logdet(), np.linalg.slogdet(s)[1]),
                   (tg.logdet(_t(s)), np.linalg.slogdet(s)[1]),
                   (A.slogdet()[1], np.linalg.slogdet(a)[1]),
                   (A.pinverse(), np.linalg.pinv(a)), (_t(s).cholesky(), np.linalg.cholesky(s)),
                   (tg.linalg.matmul(A, A), a @ a), (tg.linalg.vecdot(A, A), (a * a).sum(-1)),
                   (tg.linalg.diagonal(A), np.diagonal(a))):
        np.testing.assert_allclose(x.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert math.isnan(tg.logdet(-tg.eye(3, dtype=tg.float64)).item())
    assert tg.logdet(tg.zeros(2, 2)).item() == -math.inf
    sign, logabs = tg.linalg.slogdet(tg.ones(2, 2))
    assert sign.item() == 0 and logabs.item() == -math.inf
    assert tg.linalg.det(tg.ones(3, 3)).item() == 0
    assert issubclass(tg.linalg.LinAlgError, RuntimeError)


def test_one_record_not_differentiable():
    A = _t(_spd(_rng(10), 3), rg=True)
    TAPE._sync()
    n0 = TAPE.n
    L = tg.linalg.eigvalsh(A)          # (cholesky reads its status: a flush, which may reset)
    TAPE._sync()
    ops = TAPE.R[n0:TAPE.n, 0].tolist()
    assert ops.count(OP_LINALG) == 1
    i = n0 + ops.index(OP_LINALG)
    assert not TAPE.R[i, 5] & DIFF
    assert L.grad_fn.name() == "LinalgEighBackward0"
    L.sum().backward()
    assert A.grad is not None


# ---- gradients: finite differences ----
def _fd_cases(rng):
    a = rng.normal(size=(3, 3)) + 2 * np.eye(3)
    b = rng.normal(size=(3, 2))
    tall, wide = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    sym = rng.normal(size=(3, 3))
    eye3 = tg.eye(3, dtype=tg.float64)
    # functions whose values are defined up to signs are differentiated through invariants
    return [
        ("solve", lambda x, y: tg.linalg.solve(x, y), [a, b]),
        ("solve_vec_batch", lambda x, y: tg.linalg.solve(x, y), [np.stack([a, a.T]), b[:, 0]]),
        ("inv", lambda x: tg.linalg.inv(x), [a]),
        ("det", lambda x: tg.linalg.det(x), [a]),
        ("slogdet", lambda x: tg.linalg.slogdet(x).logabsdet, [a]),
        ("cholesky", lambda x: tg.linalg.cholesky(x @ x.mT + eye3), [a]),
        ("cholesky_upper", lambda x: tg.linalg.cholesky(x @ x.mT + eye3, upper=True), [a]),
        ("solve_triangular", lambda x, y: tg.linalg.solve_triangular(x, y, upper=True), [a, b]),
        ("solve_triangular_unit_right", lambda x, y: tg.linalg.solve_triangular(
            x, y.mT, upper=False, left=False, unitriangular=True), [a, b]),
        ("qr_tall", lambda x: tg.linalg.qr(x), [tall]),
        ("qr_wide", lambda x: tg.linalg.qr(x), [wide]),
        ("eigh", lambda x: (lambda w, v: (w, v.abs()))(*tg.linalg.eigh(x + x.mT)), [sym]),
        ("eigvalsh", lambda x: tg.linalg.eigvalsh(x + x.mT, "U"), [sym]),
        ("svd_tall", lambda x: (lambda u, s, v: (u.abs(), s, v.abs()))(
            *tg.linalg.svd(x, full_matrices=False)), [tall]),
        ("svd_wide_full", lambda x: (lambda u, s, v: (u @ v.narrow(0, 0, 2), s))(
            *tg.linalg.svd(x)), [wide]),
        ("svdvals", lambda x: tg.linalg.svdvals(x), [tall]),
        ("pinv_tall", lambda x: tg.linalg.pinv(x), [tall]),
        ("pinv_wide", lambda x: tg.linalg.pinv(x), [wide]),
        ("pinv_hermitian", lambda x: tg.linalg.pinv(x @ x.mT + eye3, hermitian=True), [a]),
        ("lstsq", lambda x, y: tg.linalg.lstsq(x, y).solution, [tall, rng.normal(size=(4, 2))]),
        ("matrix_norms", lambda x: tg.stack([tg.linalg.matrix_norm(x, o) for o in
                                             ("fro", "nuc", 2, -2, 1, math.inf)]), [tall]),
        ("vector_norms", lambda x: tg.stack([tg.linalg.vector_norm(x, o) for o in
                                             (2, 1, 3, math.inf)]), [tall]),
        ("cond", lambda x: tg.linalg.cond(x), [a]),
        ("logdet", lambda x: tg.logdet(x @ x.mT), [a]),
        ("cholesky_solve", lambda x, y: tg.cholesky_solve(y, tg.linalg.cholesky(x @ x.mT + eye3)),
         [a, b]),
    ]


CASES = _fd_cases(_rng(11))


@pytest.mark.parametrize("name,f,arrays", CASES, ids=[c[0] for c in CASES])
def test_gradcheck(name, f, arrays):
    xs = [_t(a, rg=True) for a in arrays]
    assert gradcheck(f, xs, eps=1e-6, atol=1e-5, rtol=1e-4)


# ---- against torch ----
def _torch_cases(torch, rng):
    a = rng.normal(size=(2, 3, 3)) + 2 * np.eye(3)
    b = rng.normal(size=(3, 2))
    tall, wide = rng.normal(size=(2, 5, 3)), rng.normal(size=(3, 5))
    sym = rng.normal(size=(4, 4))

    def both(fn):
        return fn(tg), fn(torch)
    L = torch.linalg
    return [
        ("solve", *both(lambda m: lambda x, y: m.linalg.solve(x, y)), [a, b]),
        ("solve_left_false", *both(lambda m: lambda x, y: m.linalg.solve(
            x, m.cat([y.mT, y.mT]), left=False)), [a, b]),
        ("inv", *both(lambda m: lambda x: m.linalg.inv(x)), [a]),
        ("det", *both(lambda m: lambda x: m.linalg.det(x)), [a]),
        ("slogdet", *both(lambda m: lambda x: m.linalg.slogdet(x)[1] * m.linalg.slogdet(x)[0]),
         [a]),
        ("cholesky", *both(lambda m: lambda x: m.linalg.cholesky(
            x @ x.mT + m.eye(3, dtype=x.dtype))), [a]),
        ("solve_triangular", *both(lambda m: lambda x, y: m.linalg.solve_triangular(
            x, y, upper=False)), [a, b]),
        ("qr", *both(lambda m: lambda x: m.cat([q.reshape(-1) for q in m.linalg.qr(x)])),
         [tall]),
        ("qr_wide", *both(lambda m: lambda x: m.cat([q.reshape(-1) for q in m.linalg.qr(x)])),
         [wide]),
        ("eigh", *both(lambda m: lambda x: m.linalg.eigh(x + x.mT)[1].abs() *
                       m.linalg.eigh(x + x.mT)[0].unsqueeze(-2)), [sym]),
        ("svd", *both(lambda m: lambda x: (lambda u, s, v: u.abs().sum() * s + v.abs().sum(-1))(
            *m.linalg.svd(x, full_matrices=False))), [tall]),
        ("svd_wide", *both(lambda m: lambda x: (lambda u, s, v: (u @ v.narrow(-2, 0, 3)).sum()
                                               * s)(*m.linalg.svd(x))), [wide]),
        ("svdvals", *both(lambda m: lambda x: m.linalg.svdvals(x)), [tall]),
        ("pinv", *both(lambda m: lambda x: m.linalg.pinv(x)), [wide]),
        ("lstsq", *both(lambda m: lambda x, y: m.linalg.lstsq(x, y).solution),
         [tall[0], rng.normal(size=(5, 2))]),
        ("matrix_norm_nuc", *both(lambda m: lambda x: m.linalg.matrix_norm(x, "nuc")), [tall]),
        ("matrix_norm_2", *both(lambda m: lambda x: m.linalg.matrix_norm(x, 2)), [tall]),
        ("matrix_norm_inf", *both(lambda m: lambda x: m.linalg.matrix_norm(x, math.inf)), [tall]),
        ("vector_norm", *both(lambda m: lambda x: m.linalg.vector_norm(x, 3, dim=(0, 2))),
         [tall]),
        ("norm", *both(lambda m: lambda x: m.linalg.norm(x, dim=1)), [tall]),
        ("cond", *both(lambda m: lambda x: m.linalg.cond(x)), [a]),
        ("logdet", *both(lambda m: lambda x: m.logdet(x @ x.mT)), [a]),
        ("pinverse", *both(lambda m: lambda x: m.pinverse(x)), [tall]),
        ("cholesky_solve", *both(lambda m: lambda x, y: m.cholesky_solve(
            y, m.linalg.cholesky(x @ x.mT + m.eye(3, dtype=x.dtype)))), [a, b]),
    ]


def _torch_case_ids():
    return [c[0] for c in _torch_cases(type("m", (), {"linalg": None}), _rng(12))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k", range(len(_torch_case_ids())), ids=_torch_case_ids())
def test_matches_torch(k, dtype):
    torch = pytest.importorskip("torch")
    name, f_tg, f_t, arrays = _torch_cases(torch, _rng(12))[k]
    tol = 1e-9 if dtype == "float64" else 3e-4
    gd, td = getattr(tg, dtype), getattr(torch, dtype)
    xs = [tg.tensor(a, dtype=gd, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=td, requires_grad=True) for a in arrays]
    out, tout = f_tg(*xs), f_t(*ts)
    assert tuple(out.shape) == tuple(tout.shape) and out.dtype.name == dtype
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=tol, atol=tol)
    w = _rng(13).normal(size=tuple(tout.shape))
    (out * tg.tensor(w, dtype=gd)).sum().backward()
    (tout * torch.tensor(w, dtype=td)).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


def test_grad_fn_names_match_torch():
    torch = pytest.importorskip("torch")
    a = _rng(14).normal(size=(3, 3)) + 2 * np.eye(3)
    for name in ("solve", "inv", "det", "cholesky", "pinv", "svdvals", "eigvalsh"):
        args = {"solve": lambda m, x: (x, x), "cholesky": lambda m, x: (x @ x.mT,)}.get(
            name, lambda m, x: (x,))
        outs = []
        for m in (tg, torch):
            x = m.tensor(a, requires_grad=True)
            outs.append(getattr(m.linalg, name)(*args(m, x)).grad_fn.name())
        assert outs[0] == outs[1], name


# ---- errors ----
def _error_cases(m):
    return [
        (m.linalg.solve, (m.ones(3, 3), m.ones(3))),
        (m.linalg.solve, (m.ones(2, 3, 3), m.ones(3, 3))),
        (m.linalg.inv, (m.ones(3, 3),)),
        (m.linalg.inv, (m.ones(2, 3, 3),)),
        (m.linalg.cholesky, (-m.eye(3),)),
        (m.linalg.cholesky, (m.ones(2, 3, 3),)),
        (m.linalg.solve, (m.ones(2, 3), m.ones(2))),
        (m.linalg.solve, (m.eye(3), m.ones(4))),
        (m.linalg.solve, (m.eye(3), m.ones(3, dtype=m.float64))),
        (m.linalg.inv, (m.ones(2, 3),)),
        (m.linalg.inv, (m.ones(3, 3, dtype=m.int64),)),
        (m.linalg.det, (m.ones(2, 3),)),
        (m.linalg.eigh, (m.ones(2, 3),)),
        (m.linalg.eigh, (m.eye(2), "X")),
        (m.linalg.cholesky, (m.ones(3, 2),)),
        (m.linalg.qr, (m.ones(3),)),
        (m.linalg.qr, (m.eye(2), "x")),
        (m.linalg.svd, (m.ones(3),)),
        (m.linalg.lstsq, (m.ones(3, 2), m.ones(4, 2))),
        (m.linalg.solve_triangular, (m.eye(3), m.ones(4, 2)), {"upper": True}),
        (m.linalg.matrix_norm, (m.ones(3),)),
        (m.linalg.matrix_norm, (m.ones(3, 3), 3)),
        (m.linalg.norm, (m.ones(2, 2, 2), 2)),
        (m.linalg.pinv, (m.ones(3),)),
        (m.linalg.solve, (m.eye(3)[None].expand(2, 3, 3), m.ones(3, 3, 2))),
        (m.linalg.solve, (m.eye(3), m.ones(3)), {"left": False}),
        (m.linalg.solve, (m.eye(3), m.ones(3, 2)), {"left": False}),
    ]


def test_errors_are_runtime_errors_naming_the_op_and_shapes():
    expected = [
        "torch.linalg.solve: The solver failed because the input matrix is singular.",
        "torch.linalg.solve: (Batch element 0): The solver failed",
        "linalg.inv: The diagonal element 2 is zero",
        "linalg.inv: (Batch element 0): The diagonal element 2 is zero",
        "linalg.cholesky: The factorization could not be completed because the input is not "
        "positive-definite (the leading minor of order 1 is not positive-definite).",
        "linalg.cholesky: (Batch element 0): ", "but they are 2 by 3 matrices", "(3x3 and 4x1)",
        "Expected A and B to have the same dtype", "but they are 2 by 3", "Got Long",
        "linalg.det: A must be", "linalg.eigh: A must be", "Expected UPLO", "3 by 2 matrices",
        "at least 2 dimensions", "unrecognized mode 'x'", "at least 2 dimensions",
        "input.size(-2) should match other.size(-2)", "(3x3 and 4x2)", "at least 2 dimensions",
        "Order 3 not supported", "must be 1D or 2D. Got 3D", "2 or more dimensions",
        "must match the size of tensor b", "XA = B (3x3 and 3x1)", "XA = B (3x3 and 3x2)"]
    for case, text in zip(_error_cases(tg), expected):
        f, args, kw = (case + ({},))[:3]
        with pytest.raises(RuntimeError) as e:
            f(*args, **kw)
        assert text in str(e.value), (str(e.value), text)
    for f, args in _error_cases(tg)[:6]:
        with pytest.raises(tg.linalg.LinAlgError):
            f(*args)


def test_errors_match_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(_error_cases(tg), _error_cases(torch)):
        (f, args, kw), (g, targs, _) = (ours + ({},))[:3], (theirs + ({},))[:3]
        with pytest.raises(Exception) as mine:
            f(*args, **kw)
        with pytest.raises(Exception) as ref:
            g(*targs, **kw)
        assert str(mine.value) == str(ref.value)
        assert isinstance(mine.value, RuntimeError) == isinstance(ref.value, RuntimeError)
        assert (isinstance(mine.value, tg.linalg.LinAlgError)
                == isinstance(ref.value, torch.linalg.LinAlgError))


def test_qr_backward_errors_as_torch():
    a = _t(_rng(15).normal(size=(4, 3)), rg=True)
    with pytest.raises(RuntimeError, match="mode='r'"):
        tg.linalg.qr(a, mode="r").R.sum().backward()
    with pytest.raises(RuntimeError, match="mode='complete' and nrows > ncols"):
        tg.linalg.qr(a, mode="complete").Q.sum().backward()


# ---- compiled steps ----
def _ridge_data(seed, n=24, d=4):
    rng = _rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ rng.normal(size=(d, 1)) + 0.1 * rng.normal(size=(n, 1))


def _ridge_step(lam, I):
    def step(X, y):
        w = tg.linalg.solve(X.T @ X + lam * I, X.T @ y)
        loss = ((X @ w - y) ** 2).mean() + (w * w).sum() * 0.01
        loss.backward()
        with tg.no_grad():
            lam.sub_(0.5 * lam.grad)
        lam.grad.zero_()
        return loss
    return step


@pytest.mark.parametrize("dt", [tg.float64, tg.float32])
@pytest.mark.parametrize("specialize_after", ["auto", 0])
def test_compiled_ridge_regression_replays_new_data(dt, specialize_after):
    data = [tuple(tg.tensor(a, dtype=dt) for a in _ridge_data(s)) for s in range(6)]
    lam_e = tg.tensor(1.0, dtype=dt, requires_grad=True)
    lam_c = tg.tensor(1.0, dtype=dt, requires_grad=True)
    I = tg.eye(4, dtype=dt)
    eager, step = _ridge_step(lam_e, I), _ridge_step(lam_c, I)
    compiled = tg.compile(step, specialize_after=specialize_after)
    for X, y in data:
        le, lc = eager(X, y).item(), compiled(X, y).item()
        assert le == pytest.approx(lc, rel=1e-6 if dt is tg.float32 else 1e-12)
        assert lam_e.item() == pytest.approx(lam_c.item(), rel=1e-6 if dt is tg.float32 else
                                             1e-12)
    assert "recorded path" in compiled.explain()
    if specialize_after == 0:
        assert "specialized" in compiled.explain()
    assert len({lc for lc in [compiled(X, y).item() for X, y in data[:2]]}) == 2  # new data


def test_compiled_ridge_run_equals_eager_loop():
    X, y = (tg.tensor(a) for a in _ridge_data(20))
    I = tg.eye(4, dtype=tg.float64)
    lam_e = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    lam_c = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    eager = [_ridge_step(lam_e, I)(X, y).item() for _ in range(30)]
    compiled = tg.compile(_ridge_step(lam_c, I))
    got = [compiled(X, y).item() for _ in range(3)] + list(compiled.run(27, X, y))
    np.testing.assert_allclose(got, eager, rtol=1e-12)
    assert lam_c.item() == pytest.approx(lam_e.item(), rel=1e-12)


def test_compiled_factorizations_replay_and_specialize():
    """Every kind of the record inside a compiled function, specialized, on new data."""
    def f(A, B):
        S = A @ A.mT + tg.eye(4, dtype=A.dtype)
        parts = [tg.linalg.inv(S), tg.linalg.det(S).reshape(1, 1),
                 tg.linalg.slogdet(S).logabsdet.reshape(1, 1), tg.linalg.cholesky(S),
                 tg.linalg.solve_triangular(tg.linalg.cholesky(S), B, upper=False),
                 tg.linalg.qr(A).R, tg.linalg.eigvalsh(S).reshape(1, 4),
                 tg.linalg.svdvals(A).reshape(1, 4), tg.linalg.pinv(A),
                 tg.linalg.lstsq(A, B).solution, tg.linalg.matrix_norm(A, "nuc").reshape(1, 1)]
        return tg.cat([p.reshape(-1) for p in parts])
    compiled = tg.compile(f, specialize_after=0)
    for s in range(4):
        rng = _rng(30 + s)
        A, B = tg.tensor(rng.normal(size=(4, 4))), tg.tensor(rng.normal(size=(4, 2)))
        np.testing.assert_allclose(compiled(A, B).numpy(), f(A, B).numpy(), rtol=1e-12,
                                   atol=1e-12)
    assert "specialized" in compiled.explain()


def test_compiled_singular_data_raises_then_recovers():
    lam = tg.tensor(0.0, dtype=tg.float64, requires_grad=True)
    I = tg.eye(4, dtype=tg.float64)

    def step(X, y):
        w = tg.linalg.solve(X.T @ X + lam * I, X.T @ y)
        loss = ((X @ w - y) ** 2).mean()
        loss.backward()
        lam.grad = None
        return loss
    compiled = tg.compile(step)
    good = [tuple(tg.tensor(a) for a in _ridge_data(s)) for s in range(3)]
    before = [compiled(X, y).item() for X, y in good]
    with pytest.raises(tg.linalg.LinAlgError, match="singular"):
        compiled(tg.zeros(24, 4, dtype=tg.float64), tg.ones(24, 1, dtype=tg.float64))
    assert [compiled(X, y).item() for X, y in good] == before
    assert [step(X, y).item() for X, y in good] == before


def test_bounds_of_empty_and_one_by_one():
    one = _t([[4.0]])
    assert tg.linalg.inv(one).item() == 0.25 and tg.linalg.det(one).item() == 4.0
    assert tg.linalg.cholesky(one).item() == 2.0
    assert tg.linalg.eigh(one).eigenvalues.item() == 4.0
    assert tg.linalg.svd(one).S.item() == 4.0
    assert tg.linalg.det(tg.zeros(0, 0, dtype=tg.float64)).item() == 1.0


def test_ex_variants_report_info_without_raising():
    A = tg.ones(2, 3, 3, dtype=tg.float64, requires_grad=True)
    inv, info = tg.linalg.inv_ex(A)
    assert info.tolist() == [2, 2] and info.dtype is tg.int32
    L, info = tg.linalg.cholesky_ex(-tg.eye(2, dtype=tg.float64))
    assert info.item() == 1
    s = _t(_spd(_rng(40), 3), rg=True)
    L, info = tg.linalg.cholesky_ex(s)
    assert info.item() == 0
    np.testing.assert_allclose(L.detach().numpy(), np.linalg.cholesky(s.detach().numpy()))
    L.sum().backward()
    assert s.grad is not None
    with pytest.raises(tg.linalg.LinAlgError):
        tg.linalg.inv_ex(tg.ones(3, 3), check_errors=True)
