"""torch.autograd.functional and torch.func: values against torch and NumPy references."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import functional as AF

A = np.array([0.3, 0.5, -1.2])
B = np.array([1.0, 2.0, 0.5])


def _f(x, y):
    return (x.sin() * y ** 2).sum() + (x * y).exp().sum() * 0.1


def _g(x):
    return x.exp() * x[0] + x.tanh()


def _np(t):
    if isinstance(t, (tuple, list)):
        return [_np(x) for x in t]
    return t.detach().numpy()


def _close(mine, theirs, tol=1e-12):
    if isinstance(mine, (tuple, list)):
        assert len(mine) == len(theirs)
        for m, t in zip(mine, theirs):
            _close(m, t, tol)
        return
    np.testing.assert_allclose(_np(mine), theirs.detach().numpy(force=True), rtol=tol,
                               atol=tol)


def test_jacobian_matches_numpy():
    J = AF.jacobian(_g, tg.tensor(A)).numpy()
    ref = np.diag(np.exp(A) * A[0] + 1 - np.tanh(A) ** 2)
    ref[:, 0] += np.exp(A)
    ref[0, 0] = np.exp(A[0]) * (1 + A[0]) + 1 - np.tanh(A[0]) ** 2
    np.testing.assert_allclose(J, ref, rtol=1e-13)


@pytest.mark.parametrize("name", ["jacobian", "hessian", "vjp", "jvp", "vhp", "hvp"])
def test_functional_matches_torch(name):
    torch = pytest.importorskip("torch")
    res = []
    for lib, F in ((tg, AF), (torch, torch.autograd.functional)):
        x, y, u, v = (lib.tensor(a) for a in (A, B, B * 0.5, A + 1))
        if name == "jacobian":
            r = F.jacobian(lambda a, b: a * b.exp(), (x, y))
        elif name == "hessian":
            r = F.hessian(_f, (x, y))
        elif name == "vjp":
            r = F.vjp(_g, x, u)
        elif name == "jvp":
            r = F.jvp(_g, x, u)
        else:
            r = getattr(F, name)(_f, (x, y), (u, v))
        res.append(r)
    _close(res[0], res[1])


def test_create_graph_keeps_results_differentiable():
    x = tg.tensor(A, requires_grad=True)
    _, jv = AF.jvp(_g, x, tg.tensor(B), create_graph=True)
    assert jv.requires_grad
    H = AF.hessian(lambda t: (t ** 3).sum(), x, create_graph=True)
    d, = tg.autograd.grad(H.sum(), x)
    np.testing.assert_allclose(d.numpy(), np.full(3, 6.0))
    J = AF.jacobian(_g, tg.tensor(A))
    assert not J.requires_grad


def test_strict_mode_and_errors_as_torch():
    x = tg.tensor(A)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        AF.jacobian(lambda a, b: a * 2, (x, x), strict=True)
    J = AF.jacobian(lambda a, b: a * 2, (x, x))
    assert not J[1].any()
    with pytest.raises(RuntimeError, match="v can only be None"):
        AF.vjp(_g, x)
    with pytest.raises(RuntimeError, match="single Tensor with a single element"):
        AF.hessian(_g, x)
    with pytest.raises(TypeError, match="must be either a Tensor or a tuple"):
        AF.jacobian(_g, [1.0])


# ---- torch.func ----
def test_func_grad_nests_and_matches_torch():
    torch = pytest.importorskip("torch")
    res = []
    for lib in (tg, torch):
        fn = lib.func
        x, y = lib.tensor(A), lib.tensor(B)
        g = fn.grad(_f, argnums=(0, 1))(x, y)
        gg = fn.grad(lambda a: fn.grad(_f)(a, y).sum())(x)
        gv = fn.grad_and_value(_f)(x, y)
        ga = fn.grad(lambda a: (_f(a, y), a.sum()), has_aux=True)(x)
        H = fn.hessian(_f)(x, y)
        Jr = fn.jacrev(lambda a, b: a * b, argnums=(0, 1))(x, y)
        Jf = fn.jacfwd(_g)(x)
        out, vjp_fn = fn.vjp(_g, x)
        vj = vjp_fn(lib.tensor(B))
        res.append([*g, gg, *gv, *ga, H, *Jr, Jf, out, *vj])
    _close(res[0], res[1])


def test_func_grad_of_a_non_scalar_raises_as_torch():
    with pytest.raises(RuntimeError, match="Expected f\\(\\*args\\) to return a scalar"):
        tg.func.grad(_g)(tg.tensor(A))
    with pytest.raises(RuntimeError, match="argnums"):
        tg.func.grad(_f, argnums=2)(tg.tensor(A), tg.tensor(B))


def test_vmap_matches_a_loop_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X, W = rng.normal(size=(5, 3)), rng.normal(size=(3, 2))
    res = []
    for lib in (tg, torch):
        fn = lib.func
        x, w = lib.tensor(X), lib.tensor(W)
        r1 = fn.vmap(lambda a, b: (a @ b).tanh(), in_dims=(0, None))(x, w)
        r2 = fn.vmap(lambda a: (a.sum(), a * 2), in_dims=1, out_dims=(0, 1))(x)
        per_sample = fn.vmap(fn.grad(lambda a, b: ((a @ b) ** 2).sum()), in_dims=(None, 0))(
            w.t().contiguous(), x.t().contiguous().t().contiguous())
        res.append([r1, *r2, per_sample])
    _close(res[0], res[1])
    np.testing.assert_allclose(res[0][0].numpy(), np.tanh(X @ W), rtol=1e-13)


def test_functional_call_swaps_parameters_for_one_call():
    torch = pytest.importorskip("torch")
    res = []
    for lib in (tg, torch):
        lib.manual_seed(0)
        lin = lib.nn.Linear(3, 2)
        before = lin.weight.detach().numpy().copy()
        params = {"weight": lib.tensor(np.arange(6.0).reshape(2, 3), dtype=lib.float32,
                                       requires_grad=True),
                  "bias": lib.tensor([0.5, -1.0], dtype=lib.float32)}
        out = lib.func.functional_call(lin, params, (lib.ones(4, 3),))
        g, = lib.autograd.grad(out.sum(), params["weight"])
        np.testing.assert_array_equal(lin.weight.detach().numpy(), before)
        res.append([out, g])
    _close(res[0], res[1], 1e-6)
