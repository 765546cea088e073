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
        opt = L.optim.SGD(model.parameters(), lr=0.5)
        loss_fn = L.nn.BCEWithLogitsLoss()

        def step(X, y):
            opt.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            opt.step()
            return loss
        if L is tg:
            step = tg.compile(step)
        Xt, yt = L.tensor(X), L.tensor(y)
        losses.append([step(Xt, yt).item() for _ in range(30)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert losses[1][-1] < losses[1][0]
