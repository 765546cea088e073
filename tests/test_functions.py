"""Functions composed of tape ops (tapegrad.nn.functional and the tensor methods built on it):
softplus, silu, gelu, softmax, log_softmax, logsumexp, binary_cross_entropy_with_logits and
their modules. Values against NumPy references, gradients against finite differences of the
same function (float64), both against torch where it is installed, and compiled replays
against eager."""
import math

import numpy as np
import pytest

import tapegrad as tg
from oracles import check_against_torch, finite_difference_grads, tapegrad_grads
from test_fuse import _module_step

RTOL, ATOL = 1e-6, 1e-7
RNG = np.random.default_rng(7)
Y = (RNG.uniform(size=(4, 5)) > 0.5).astype(np.float64)         # binary targets
W = RNG.uniform(0.5, 2.0, size=(4, 5))                            # per-element weights
PW = RNG.uniform(0.5, 2.0, size=(5,))                             # per-class pos_weight


def _F(L):
    return L.nn.functional


def _like(L, a, x):
    """a constant of x's dtype (targets and weights do not promote a float32 input)."""
    return L.tensor(a, dtype=x.dtype)


def _np_softplus(x, beta=1.0, threshold=20.0):
    bx = beta * x
    return np.where(bx > threshold, x, (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx))))
                    / beta)


def _np_lse(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_bce(x, y, w=None, pw=None):
    lw = 1.0 if pw is None else 1.0 + (pw - 1.0) * y
    loss = (1.0 - y) * x + lw * _np_softplus(-x, 1.0, math.inf)
    return loss if w is None else loss * w


_erf = np.vectorize(math.erf)

# name -> (f(lib, x) for tapegrad and torch alike, NumPy reference of its value)
CASES = {
    "softplus": (lambda L, x: _F(L).softplus(x), _np_softplus),
    "softplus beta=2 threshold=3": (lambda L, x: _F(L).softplus(x, beta=2.0, threshold=3.0),
                                    lambda x: _np_softplus(x, 2.0, 3.0)),
    "silu": (lambda L, x: _F(L).silu(x), lambda x: x / (1.0 + np.exp(-x))),
    "gelu": (lambda L, x: _F(L).gelu(x), lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2)))),
    "gelu tanh": (lambda L, x: _F(L).gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                   * (x + 0.044715 * x ** 3)))),
    "softmax dim=1": (lambda L, x: L.softmax(x, 1),
                      lambda x: np.exp(x - _np_lse(x, 1, True))),
    "softmax dim=0": (lambda L, x: x.softmax(0), lambda x: np.exp(x - _np_lse(x, 0, True))),
    "log_softmax dim=-1": (lambda L, x: _F(L).log_softmax(x, dim=-1),
                           lambda x: x - _np_lse(x, -1, True)),
    "logsumexp dim=1": (lambda L, x: L.logsumexp(x, 1), lambda x: _np_lse(x, 1)),
    "logsumexp dim=0 keepdim": (lambda L, x: x.logsumexp(0, keepdim=True),
                                lambda x: _np_lse(x, 0, True)),
    "logsumexp dims (0, 1)": (lambda L, x: L.logsumexp(x, (0, 1)),
                              lambda x: _np_lse(x, (0, 1))),
    "bce_with_logits none": (
        lambda L, x: _F(L).binary_cross_entropy_with_logits(x, _like(L, Y, x), reduction="none"),
        lambda x: _np_bce(x, Y)),
    "bce_with_logits mean": (
        lambda L, x: _F(L).binary_cross_entropy_with_logits(x, _like(L, Y, x)),
        lambda x: _np_bce(x, Y).mean()),
    "bce_with_logits weight pos_weight sum": (
        lambda L, x: _F(L).binary_cross_entropy_with_logits(
            x, _like(L, Y, x), weight=_like(L, W, x), pos_weight=_like(L, PW, x),
            reduction="sum"),
        lambda x: _np_bce(x, Y, W, PW).sum()),
    "BCEWithLogitsLoss pos_weight": (
        lambda L, x: L.nn.BCEWithLogitsLoss(pos_weight=_like(L, PW, x))(x, _like(L, Y, x)),
        lambda x: _np_bce(x, Y, None, PW).mean()),
}


def _inputs(name):
    """4 x 5 values over both signs, one large enough for softplus's threshold and for
    overflow of a naive exp (x = +-40)."""
    x = np.random.default_rng(len(name)).normal(scale=3.0, size=(4, 5))
    x[0, 0], x[1, 1], x[2, 2] = 40.0, -40.0, 0.0
    return x


@pytest.mark.parametrize("name", CASES)
def test_value_matches_numpy(name):
    f, ref = CASES[name]
    x = _inputs(name)
    out = f(tg, tg.tensor(x))
    np.testing.assert_allclose(out.numpy(), ref(x), rtol=1e-12, atol=1e-12)
    out32 = f(tg, tg.tensor(x, dtype=tg.float32))
    assert out32.dtype == tg.float32
    np.testing.assert_allclose(out32.numpy(), ref(x), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", CASES)
def test_gradient_matches_finite_differences(name):
    f, _ = CASES[name]
    x = _inputs(name)
    x[np.abs(x) > 10] = 0.3        # finite differences stay off the threshold of softplus
    weight = np.random.default_rng(1).normal(size=np.shape(f(tg, tg.tensor(x)).numpy()))
    _, (g,) = tapegrad_grads(lambda t: f(tg, t), [x], weight)
    expected = finite_difference_grads(lambda a: f(tg, tg.tensor(a)).numpy(), [x], weight)
    np.testing.assert_allclose(g.numpy(), expected[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch(name, dtype):
    torch = pytest.importorskip("torch")
    f, _ = CASES[name]
    tol = 1e-10 if dtype == "float64" else 2e-5
    check_against_torch(lambda t: f(tg, t), lambda t: f(torch, t), [_inputs(name)], dtype,
                        rtol=tol, atol=tol)


@pytest.mark.parametrize("name", CASES)
def test_compiled_equals_eager(name):
    f, _ = CASES[name]
    x = _inputs(name)

    def step(t):
        out = f(tg, t).sum()
        out.backward()
        return out
    grads = []
    for fn in (step, tg.compile(step, specialize_after=0)):
        outs = []
        for _ in range(3):
            t = tg.tensor(x, requires_grad=True)
            outs.append(fn(t).item())
            grads.append(t.grad.numpy())
        assert outs[0] == outs[1] == outs[2]
    for g in grads[1:]:
        np.testing.assert_allclose(g, grads[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("values,lse", [([-np.inf, -np.inf], -np.inf), ([np.inf, 1.0], np.inf),
                                        ([np.nan, 1.0], np.nan), ([1000.0, 1000.0],
                                                                 1000.0 + math.log(2))])
def test_logsumexp_and_softmax_of_infinities_are_torchs(values, lse):
    x = tg.tensor(values, dtype=tg.float64)
    np.testing.assert_equal(tg.logsumexp(x, 0).item(), lse)
    s = tg.softmax(x, 0).numpy()
    if np.all(np.isfinite(values)):
        np.testing.assert_allclose(s, [0.5, 0.5])
    else:                           # exp(inf - inf), 0 / 0: torch gives NaN too
        assert np.isnan(s).all()


def test_softmax_without_dim_warns_and_picks_torchs_dim():
    x = tg.tensor(np.arange(6.0).reshape(2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        s = tg.nn.functional.softmax(x)
    np.testing.assert_allclose(s.numpy().sum(1), [1.0, 1.0])


def test_bce_with_logits_checks_sizes_and_reduction():
    x, y = tg.zeros(3, 1), tg.zeros(3)
    with pytest.raises(ValueError, match=r"Target size \(.*3.*\) must be the same as input "
                                         r"size \(.*3, 1.*\)"):
        tg.nn.functional.binary_cross_entropy_with_logits(x, y)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        tg.nn.BCEWithLogitsLoss(reduction="avg")(x, tg.zeros(3, 1))


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        tg.nn.functional.gelu(tg.ones(2), approximate="erf")


def test_modules_and_their_reprs():
    x = tg.tensor(_inputs("modules"))
    F = tg.nn.functional
    for module, fn in [(tg.nn.Softplus(2.0, 5.0), lambda t: F.softplus(t, 2.0, 5.0)),
                       (tg.nn.SiLU(), F.silu), (tg.nn.GELU("tanh"),
                                                lambda t: F.gelu(t, approximate="tanh")),
                       (tg.nn.Softmax(dim=1), lambda t: F.softmax(t, 1)),
                       (tg.nn.LogSoftmax(dim=0), lambda t: F.log_softmax(t, 0))]:
        np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    assert repr(tg.nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(tg.nn.GELU()) == "GELU(approximate='none')"
    assert repr(tg.nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_logistic_regression_with_bce_with_logits_follows_torch():
    """A logistic regression as the tutorials write it: nn.Linear, BCEWithLogitsLoss, SGD,
    compiled with the defaults; the trajectory is torch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 6)).astype(np.float32)
    y = (X @ rng.standard_normal((6, 1)) > 0).astype(np.float32)
    losses = []
    for L in (torch, tg):
        L.manual_seed(0)
        model = L.nn.Linear(6, 1)
        with L.no_grad():
            model.weight.copy_(L.tensor(np.full((1, 6), 0.1, np.float32)))
            model.bias.fill_(-0.2)
        step = _module_step(model, L.nn.BCEWithLogitsLoss(),
                            L.optim.SGD(model.parameters(), lr=0.5))
        if L is tg:
            step = tg.compile(step)
        Xt, yt = L.tensor(X), L.tensor(y)
        losses.append([step(Xt, yt).item() for _ in range(30)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert losses[1][-1] < losses[1][0]


# ---- where and masked_fill: each element copied from the side taken ----
def _where_cases(L, a, b):
    return [L.where(a > 0.2, a, b), L.where(a > 0.2, a, 0.5), L.where(b < 0, -1.0, b),
            a.masked_fill(a < 0, -2.0), a.where(a.abs() < 1, b)]


def _where_inputs():
    rng = np.random.default_rng(4)
    return rng.normal(size=(3, 4)), rng.normal(size=(4,))


def test_where_values_and_gradients_match_numpy():
    A, B = _where_inputs()
    a, b = tg.tensor(A, requires_grad=True), tg.tensor(B, requires_grad=True)
    outs = _where_cases(tg, a, b)
    Bb = np.broadcast_to(B, A.shape)
    refs = [np.where(A > 0.2, A, Bb), np.where(A > 0.2, A, 0.5), np.where(B < 0, -1.0, B),
            np.where(A < 0, -2.0, A), np.where(np.abs(A) < 1, A, Bb)]
    for o, r in zip(outs, refs):
        np.testing.assert_array_equal(o.detach().numpy(), r)
    sum(o.sum() for o in outs).backward()
    ga = (A > 0.2) * 2.0 + (A >= 0) + (np.abs(A) < 1)     # the sides each output took
    gb = ((A <= 0.2).sum(0) + (np.abs(A) >= 1).sum(0)) + (B >= 0)
    np.testing.assert_array_equal(a.grad.numpy(), ga)
    np.testing.assert_array_equal(b.grad.numpy(), gb)


def test_where_keeps_the_side_not_taken_out():
    a = tg.tensor([1.0, np.inf, np.nan, -1.0], requires_grad=True)
    out = tg.where(a < 2.0, a, 0.0)                  # inf and NaN compare False: 0 there
    np.testing.assert_array_equal(out.detach().numpy(), [1.0, 0.0, 0.0, -1.0])
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 0.0, 0.0, 1.0])


def test_where_matches_torch():
    torch = pytest.importorskip("torch")
    A, B = _where_inputs()
    A[0, 1], B[2] = np.inf, np.nan
    got = []
    for L in (tg, torch):
        a = L.tensor(A, dtype=L.float64, requires_grad=True)
        b = L.tensor(B, dtype=L.float64, requires_grad=True)
        outs = _where_cases(L, a, b)
        w = np.random.default_rng(5)
        total = sum((L.where(o.isnan() | o.isinf(), 0.0, o)
                     * L.tensor(w.normal(size=tuple(o.shape)))).sum() for o in outs)
        total.backward()
        got.append(([o.detach().numpy() for o in outs], a.grad.numpy(), b.grad.numpy(),
                    [o.grad_fn.name() for o in outs]))
    for x, y in zip(got[0][0], got[1][0]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(got[0][1], got[1][1], rtol=1e-12)
    np.testing.assert_allclose(got[0][2], got[1][2], rtol=1e-12)
    assert got[0][3] == got[1][3]


def test_where_dtypes_shapes_and_errors():
    c = tg.tensor([True, False])
    r = tg.where(c, tg.tensor([1, 2]), tg.tensor([5, 6]))
    assert r.dtype == tg.int64 and r.tolist() == [1, 6]
    assert tg.where(c, tg.ones(2, dtype=tg.float32), 0.5).dtype == tg.float32
    assert tg.where(c, 1, 0.5).dtype == tg.get_default_dtype()
    assert tuple(tg.where(tg.ones(3, 1) > 0, tg.ones(4), 0.0).shape) == (3, 4)
    rows, cols = tg.where(tg.tensor([[0.0, 1.0], [2.0, 0.0]]) > 0)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        tg.where(tg.ones(2), tg.ones(2), 0.0)
    with pytest.raises(RuntimeError, match="must match"):
        tg.where(c, tg.ones(3), 0.0)
    with pytest.raises(RuntimeError, match="only supports boolean masks"):
        tg.ones(2).masked_fill(tg.ones(2), 0.0)
    x = tg.zeros(2, 3)
    assert x.masked_fill_(tg.tensor([True, False, True]), 7.0) is x
    assert x.tolist() == [[7.0, 0.0, 7.0], [7.0, 0.0, 7.0]]


def test_where_compiled_follows_the_condition_of_each_call():
    """The condition is computed from the input: a compiled step that uses it must give each
    call's own answer (its replays are guarded by the values compared)."""
    def step(x):
        out = tg.where(x > 0, x, 0.1 * x).sum()
        out.backward()
        return out
    f = tg.compile(step)
    rng = np.random.default_rng(6)
    for _ in range(4):
        v = rng.normal(size=(5,))
        x, y = tg.tensor(v, requires_grad=True), tg.tensor(v, requires_grad=True)
        assert f(x).item() == step(y).item()
        np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())


def test_isinf_isfinite_and_nan_to_num_match_numpy_and_pass_gradients_where_finite():
    v = np.array([1.5, np.inf, -np.inf, np.nan, -2.0])
    x = tg.tensor(v, dtype=tg.float64, requires_grad=True)
    np.testing.assert_array_equal(x.isinf().numpy(), np.isinf(v))
    np.testing.assert_array_equal(tg.isfinite(x).numpy(), np.isfinite(v))
    np.testing.assert_array_equal(x.isposinf().numpy(), np.isposinf(v))
    np.testing.assert_array_equal(x.isneginf().numpy(), np.isneginf(v))
    y = x.nan_to_num()
    np.testing.assert_array_equal(y.detach().numpy(), np.nan_to_num(v))
    z = tg.nan_to_num(x, nan=7.0, posinf=1.0, neginf=-1.0)
    np.testing.assert_array_equal(z.detach().numpy(), [1.5, 1.0, -1.0, 7.0, -2.0])
    (y.sum() + z.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * np.isfinite(v))
    assert y.grad_fn.name() == "NanToNumBackward0"


# ---- shape functions composed of slicing, indexing, products and where ----
_V3, _M53, _I43 = RNG.normal(size=(3,)), RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3))
_B3, _C3 = RNG.normal(size=(2, 4, 5)), RNG.normal(size=(2, 5, 3))
_IX0, _IX1 = RNG.integers(0, 4, size=(3, 5)), RNG.integers(0, 5, size=(4, 2))


def _scaled_parts(parts):
    return [t * (i + 1) for i, t in enumerate(parts)]


# name -> (f(lib, a) on a 4 x 5 input, NumPy reference)
SHAPE_CASES = {
    "narrow": (lambda L, a: a.narrow(1, 1, 3), lambda a: a[:, 1:4]),
    "split int": (lambda L, a: L.cat(_scaled_parts(a.split(2, 1)), 1),
                  lambda a: np.concatenate(_scaled_parts([a[:, :2], a[:, 2:4], a[:, 4:]]), 1)),
    "split sizes": (lambda L, a: L.cat(_scaled_parts(L.split(a, [1, 3], 0)), 0),
                    lambda a: np.concatenate(_scaled_parts([a[:1], a[1:]]), 0)),
    "chunk": (lambda L, a: L.cat(_scaled_parts(a.chunk(3, 1)), 1),
              lambda a: np.concatenate(_scaled_parts([a[:, :2], a[:, 2:4], a[:, 4:]]), 1)),
    "broadcast_to": (lambda L, a: a[0].broadcast_to((3, 5)),
                     lambda a: np.broadcast_to(a[0], (3, 5))),
    "index_select dim 0": (lambda L, a: a.index_select(0, L.tensor([2, 0, 2])),
                           lambda a: a[[2, 0, 2]]),
    "index_select dim 1": (lambda L, a: L.index_select(a, 1, L.tensor([4, 1])),
                           lambda a: a[:, [4, 1]]),
    "outer": (lambda L, a: L.outer(a[1], L.tensor(_V3)), lambda a: np.outer(a[1], _V3)),
    "bmm": (lambda L, a: L.bmm(a.unsqueeze(0) * L.tensor(_B3), L.tensor(_C3)),
            lambda a: (a[None] * _B3) @ _C3),
    "addmm": (lambda L, a: L.addmm(L.tensor(_I43), a, L.tensor(_M53), beta=0.5, alpha=2.0),
              lambda a: 0.5 * _I43 + 2.0 * a @ _M53),
    "tril": (lambda L, a: a.tril(), np.tril),
    "tril -1": (lambda L, a: L.tril(a, -1), lambda a: np.tril(a, -1)),
    "triu 1": (lambda L, a: a.triu(1), lambda a: np.triu(a, 1)),
    "triu batched": (lambda L, a: (a.unsqueeze(0) * L.tensor(_B3)).triu(),
                     lambda a: np.triu(a[None] * _B3)),
    "diag of a matrix": (lambda L, a: a.diag(), np.diag),
    "diag of a matrix k=2": (lambda L, a: a.diag(2), lambda a: np.diag(a, 2)),
    "diag of a matrix k=-1": (lambda L, a: L.diag(a, -1), lambda a: np.diag(a, -1)),
    "diag of a vector": (lambda L, a: a[1].diag(), lambda a: np.diag(a[1])),
    "diag of a vector k=1": (lambda L, a: a[2].diag(1), lambda a: np.diag(a[2], 1)),
    "diag of a vector k=-2": (lambda L, a: L.diag(a[0], -2), lambda a: np.diag(a[0], -2)),
    "gather dim 0": (lambda L, a: a.gather(0, L.tensor(_IX0)),
                     lambda a: np.take_along_axis(a, _IX0, 0)),
    "gather dim -1": (lambda L, a: L.gather(a, -1, L.tensor(_IX1)),
                      lambda a: np.take_along_axis(a, _IX1, 1)),
    "take_along_dim": (lambda L, a: L.take_along_dim(a, L.tensor(_IX1), 1),
                       lambda a: np.take_along_axis(a, _IX1, 1)),
    "sort": (lambda L, a: a.sort()[0], lambda a: np.sort(a, 1)),
    "sort dim 0 descending": (lambda L, a: L.sort(a, 0, descending=True).values,
                              lambda a: -np.sort(-a, 0)),
    "topk": (lambda L, a: a.topk(2).values, lambda a: -np.sort(-a, 1)[:, :2]),
    "topk smallest dim 0": (lambda L, a: a.topk(3, dim=0, largest=False)[0],
                            lambda a: np.sort(a, 0)[:3]),
}


@pytest.mark.parametrize("name", SHAPE_CASES)
def test_shape_function_values_and_gradients(name):
    f, ref = SHAPE_CASES[name]
    a = np.random.default_rng(9).normal(size=(4, 5))
    np.testing.assert_allclose(f(tg, tg.tensor(a)).numpy(), ref(a), rtol=1e-12, atol=1e-12)
    weight = np.random.default_rng(2).normal(size=np.shape(ref(a)))
    _, (g,) = tapegrad_grads(lambda t: f(tg, t), [a], weight)
    expected = finite_difference_grads(lambda x: f(tg, tg.tensor(x)).numpy(), [a], weight)
    np.testing.assert_allclose(g.numpy(), expected[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SHAPE_CASES)
def test_shape_function_matches_torch(name):
    torch = pytest.importorskip("torch")
    f, _ = SHAPE_CASES[name]
    a = np.random.default_rng(9).normal(size=(4, 5))
    check_against_torch(lambda t: f(tg, t), lambda t: f(torch, t), [a], "float64",
                        rtol=1e-12, atol=1e-12)


def test_shape_functions_raise_torchs_errors():
    a = tg.ones(4, 5)
    with pytest.raises(RuntimeError, match="split_with_sizes expects split_sizes to sum "
                                           "exactly to 4"):
        a.split([1, 2])
    with pytest.raises(RuntimeError, match="exceeds dimension size"):
        a.narrow(1, 3, 3)
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0"):
        a.chunk(0)
    with pytest.raises(IndexError, match="Index is supposed to be a vector"):
        a.index_select(0, tg.tensor([[0]]))
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        tg.bmm(a, a)
    with pytest.raises(RuntimeError, match=r"first two dimensions of batch2 tensor to be: "
                                           r"\[1, 5\] but got: \[1, 4\]"):
        tg.bmm(tg.ones(1, 4, 5), tg.ones(1, 4, 5))
    with pytest.raises(RuntimeError, match="outer: expected 1-D tensors"):
        tg.outer(a, a)
    with pytest.raises(RuntimeError, match="Supports 1D or 2D tensors"):
        tg.ones(2, 2, 2).diag()
    assert [tuple(t.shape) for t in a.chunk(3, 1)] == [(4, 2), (4, 2), (4, 1)]
    assert tg.tril(tg.ones(3, 3, dtype=tg.int64)).dtype == tg.int64


def test_sort_argsort_topk_indices_and_nans_are_torchs():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(3).normal(size=(4, 5))
    a[1, 2], a[2, 3] = np.nan, a[2, 1]                  # a NaN and a tie
    got = []
    for L in (tg, torch):
        t = L.tensor(a)
        s, d = t.sort(1), t.sort(0, descending=True)
        got.append([s.values.numpy(), s.indices.numpy(), d.values.numpy(), d.indices.numpy(),
                    t.argsort(1).numpy(), t.topk(2).indices.numpy(),
                    t.topk(2, largest=False).values.numpy()])
    for x, y in zip(*got):
        np.testing.assert_array_equal(x, y)


def test_gather_and_topk_errors():
    a = tg.ones(3, 4)
    with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 4"):
        a.gather(1, tg.tensor([[4]]))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        a.gather(0, tg.tensor([0]))
    with pytest.raises(RuntimeError, match="Expected dtype int64 for index"):
        a.gather(0, tg.zeros(1, 1))
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        a.topk(5)
