"""More of tapegrad.nn: the classification and likelihood losses (cross_entropy, nll_loss,
poisson_nll_loss, gaussian_nll_loss), Dropout, LayerNorm, BatchNorm1d, Embedding, ModuleDict,
ParameterDict and nn.utils. Values against NumPy references written here, gradients against
finite differences (float64), both against torch when it is installed, compiled steps against
eager ones, and the errors for bad arguments (torch's messages, checked against torch too)."""
import gc
import math
import re
from collections import OrderedDict

import numpy as np
import pytest

import tapegrad as tg
from oracles import check_against_torch, finite_difference_grads, tapegrad_grads

nn = tg.nn
F = tg.nn.functional
RNG = np.random.default_rng(11)
T5 = np.array([0, 3, 1, -100, 2])                       # class targets, one ignored
T5B = np.array([0, 3, 1, 1, 2])                         # with ignore_index=1
T3 = np.array([[0, 1], [3, -100], [2, 2]])              # (N, d) targets of (N, C, d) input
W4 = RNG.uniform(0.5, 2.0, size=4)                      # class weights
COUNTS = np.array([[0.0, 1.0, 2.0, 5.0], [3.0, 0.0, 1.0, 7.0], [1.5, 2.5, 0.5, 4.0]])
REDUCTIONS = ["mean", "sum", "none"]


def _L(lib):
    return lib.nn.functional


def _c(L, a, x):
    """a constant of x's dtype (weights and float targets do not promote a float32 input)."""
    return L.tensor(a, dtype=x.dtype)


def _np(t):
    return t.detach().numpy()


# ---- NumPy references ----
def _np_log_softmax(x, axis):
    z = x - x.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


def _np_reduce(loss, reduction, denominator=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.size if denominator is None else denominator)


def _np_nll(logp, t, w=None, ignore=-100, reduction="mean"):
    """-w[t] logp[n, t, ...], 0 where t == ignore; 'mean' over the weights counted."""
    one = logp.ndim == 1
    if one:
        logp, t = logp[None], np.reshape(t, (1,))
    valid = t != ignore
    safe = np.where(valid, t, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), 1)[:, 0]
    wt = (np.ones_like(picked) if w is None else w[safe]) * valid
    loss = np.where(valid, -picked * wt, 0.0)
    return _np_reduce(loss.reshape(()) if one else loss, reduction, wt.sum())


def _np_ce(x, t, w=None, ignore=-100, reduction="mean", smoothing=0.0):
    """Cross-entropy of class indices with label smoothing s: (1 - s) times the nll of the
    class plus s / C times the loss of a uniform target, both weighted as torch weights
    them (the class's weight for the first, each class's for the second)."""
    axis = 0 if x.ndim == 1 else 1
    logp = _np_log_softmax(x, axis)
    c = x.shape[axis]
    nll = _np_nll(logp, t, w, ignore, "none")
    ws = np.ones(c) if w is None else w
    shape = [1] * x.ndim
    shape[axis] = c
    uniform = -(logp * ws.reshape(shape)).sum(axis) * (np.asarray(t) != ignore)
    loss = (1 - smoothing) * nll + smoothing / c * uniform
    safe = np.where(np.asarray(t) != ignore, t, 0)
    return _np_reduce(loss, reduction, (ws[safe] * (np.asarray(t) != ignore)).sum())


def _np_ce_probs(x, q, w=None, reduction="mean", smoothing=0.0):
    axis = 0 if x.ndim == 1 else 1
    c = x.shape[axis]
    q = q * (1 - smoothing) + smoothing / c
    shape = [1] * x.ndim
    shape[axis] = c
    loss = -(_np_log_softmax(x, axis) * q * (1.0 if w is None else w.reshape(shape))).sum(axis)
    return _np_reduce(loss, reduction)


def _np_poisson(x, t, log_input=True, full=False, eps=1e-8, reduction="mean"):
    loss = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            st = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
        loss = loss + np.where(t > 1, st, 0.0)
    return _np_reduce(loss, reduction)


def _np_gaussian(x, t, var, full=False, eps=1e-6, reduction="mean"):
    if var.shape != x.shape and var.shape == x.shape[:-1]:
        var = var[..., None]
    var = np.maximum(var, eps)
    loss = 0.5 * (np.log(var) + (x - t) ** 2 / var) + (0.5 * np.log(2 * np.pi) if full else 0)
    return _np_reduce(loss, reduction)


# ---- loss cases: name -> (f(lib, *tensors), NumPy reference, input arrays) ----
def _loss_cases():
    x5, x3 = RNG.normal(scale=2.0, size=(5, 4)), RNG.normal(scale=2.0, size=(3, 4, 2))
    x1 = RNG.normal(size=4)
    cases = {}
    for red in REDUCTIONS:
        cases[f"cross_entropy {red}"] = (
            lambda L, x, red=red: _L(L).cross_entropy(x, L.tensor(T5), reduction=red),
            lambda x, red=red: _np_ce(x, T5, reduction=red), [x5])
        cases[f"cross_entropy weight {red}"] = (
            lambda L, x, red=red: _L(L).cross_entropy(x, L.tensor(T5), _c(L, W4, x),
                                                      reduction=red),
            lambda x, red=red: _np_ce(x, T5, W4, reduction=red), [x5])
        cases[f"cross_entropy smoothing weight {red}"] = (
            lambda L, x, red=red: L.nn.CrossEntropyLoss(_c(L, W4, x), reduction=red,
                                                        label_smoothing=0.2)(x, L.tensor(T5)),
            lambda x, red=red: _np_ce(x, T5, W4, reduction=red, smoothing=0.2), [x5])
        cases[f"cross_entropy smoothing ignore_index=1 {red}"] = (
            lambda L, x, red=red: _L(L).cross_entropy(x, L.tensor(T5B), ignore_index=1,
                                                      reduction=red, label_smoothing=0.3),
            lambda x, red=red: _np_ce(x, T5B, None, 1, red, 0.3), [x5])
        cases[f"cross_entropy 3-d weight smoothing {red}"] = (
            lambda L, x, red=red: _L(L).cross_entropy(x, L.tensor(T3), _c(L, W4, x),
                                                      reduction=red, label_smoothing=0.1),
            lambda x, red=red: _np_ce(x, T3, W4, reduction=red, smoothing=0.1), [x3])
        cases[f"cross_entropy 1-d input {red}"] = (
            lambda L, x, red=red: _L(L).cross_entropy(x, L.tensor(2), _c(L, W4, x),
                                                      reduction=red),
            lambda x, red=red: _np_ce(x, np.array(2), W4, reduction=red), [x1])
        cases[f"cross_entropy probabilities weight smoothing {red}"] = (
            lambda L, x, q, red=red: _L(L).cross_entropy(x, q.softmax(1), _c(L, W4, x),
                                                         reduction=red, label_smoothing=0.1),
            lambda x, q, red=red: _np_ce_probs(x, np.exp(_np_log_softmax(q, 1)), W4, red,
                                               0.1), [x5, RNG.normal(size=(5, 4))])
        cases[f"cross_entropy probabilities 3-d {red}"] = (
            lambda L, x, red=red: L.nn.CrossEntropyLoss(reduction=red)(
                x, _c(L, np.exp(_np_log_softmax(x3 * 0.5, 1)), x)),
            lambda x, red=red: _np_ce_probs(x, np.exp(_np_log_softmax(x3 * 0.5, 1)),
                                            reduction=red), [x3])
        cases[f"nll_loss weight {red}"] = (
            lambda L, x, red=red: L.nn.NLLLoss(_c(L, W4, x), reduction=red)(x, L.tensor(T5)),
            lambda x, red=red: _np_nll(x, T5, W4, reduction=red), [x5])
        cases[f"nll_loss 3-d ignore_index=2 {red}"] = (
            lambda L, x, red=red: _L(L).nll_loss(x, L.tensor(np.abs(T3) % 4), ignore_index=2,
                                                 reduction=red),
            lambda x, red=red: _np_nll(x, np.abs(T3) % 4, ignore=2, reduction=red), [x3])
        cases[f"poisson_nll_loss {red}"] = (
            lambda L, x, red=red: _L(L).poisson_nll_loss(x, _c(L, COUNTS, x), reduction=red),
            lambda x, red=red: _np_poisson(x, COUNTS, reduction=red),
            [RNG.normal(size=(3, 4))])
        cases[f"PoissonNLLLoss rate full {red}"] = (
            lambda L, x, red=red: L.nn.PoissonNLLLoss(log_input=False, full=True,
                                                      reduction=red)(x * x + 0.5,
                                                                     _c(L, COUNTS, x)),
            lambda x, red=red: _np_poisson(x * x + 0.5, COUNTS, False, True, reduction=red),
            [RNG.normal(size=(3, 4))])
        cases[f"gaussian_nll_loss full {red}"] = (
            lambda L, x, t, v, red=red: _L(L).gaussian_nll_loss(x, t, v * v + 0.1, full=True,
                                                                reduction=red),
            lambda x, t, v, red=red: _np_gaussian(x, t, v * v + 0.1, True, reduction=red),
            [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))])
        cases[f"GaussianNLLLoss var (N,) {red}"] = (
            lambda L, x, t, v, red=red: L.nn.GaussianNLLLoss(reduction=red)(x, t, v * v + 0.1),
            lambda x, t, v, red=red: _np_gaussian(x, t, v * v + 0.1, reduction=red),
            [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=3)])
    return cases


LOSS_CASES = _loss_cases()


@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss_value_matches_numpy(name):
    f, ref, arrays = LOSS_CASES[name]
    out = f(tg, *[tg.tensor(a) for a in arrays])
    np.testing.assert_allclose(_np(out), ref(*arrays), rtol=1e-12, atol=1e-12)
    out32 = f(tg, *[tg.tensor(a, dtype=tg.float32) for a in arrays])
    assert out32.dtype is tg.float32 and out32.shape == out.shape
    np.testing.assert_allclose(_np(out32), ref(*arrays), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss_gradient_matches_finite_differences(name):
    f, _, arrays = LOSS_CASES[name]
    shape = np.shape(_np(f(tg, *[tg.tensor(a) for a in arrays])))
    weight = np.random.default_rng(1).normal(size=shape)
    _, grads = tapegrad_grads(lambda *ts: f(tg, *ts), arrays, weight)
    expected = finite_difference_grads(lambda *a: _np(f(tg, *[tg.tensor(b) for b in a])),
                                       arrays, weight)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LOSS_CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_matches_torch(name, dtype):
    torch = pytest.importorskip("torch")
    f, _, arrays = LOSS_CASES[name]
    tol = 1e-10 if dtype == "float64" else 2e-5
    check_against_torch(lambda *ts: f(tg, *ts), lambda *ts: f(torch, *ts), arrays, dtype,
                        rtol=tol, atol=tol)


@pytest.mark.parametrize("name", [n for n in LOSS_CASES if n.endswith("mean")])
def test_loss_compiled_equals_eager(name):
    f, _, arrays = LOSS_CASES[name]

    def step(*ts):
        out = f(tg, *ts).sum()
        out.backward()
        return out
    results = []
    gc.collect()
    compiled = tg.compile(step, specialize_after=0)
    for fn in (step, compiled):
        ts = [tg.tensor(a, requires_grad=True) for a in arrays]
        for k in range(4):
            if k:
                for t in ts:
                    t.grad.zero_()
            results.append((fn(*ts).item(), [t.grad.numpy() for t in ts]))
    assert compiled.paths, compiled.explain()           # it replays
    for value, grads in results[1:]:
        assert value == results[0][0]
        for g, h in zip(grads, results[0][1]):
            np.testing.assert_array_equal(g, h)


def test_ignored_targets_count_for_nothing():
    """An ignored entry adds nothing, even where its log-probability at class 0 (what it is
    gathered at) is -inf, and gets no gradient; 'mean' over nothing is NaN, 'sum' 0, as
    torch."""
    rng = np.random.default_rng(100)
    x = rng.normal(size=(5, 4))
    x[3, 0] = -np.inf
    a = tg.tensor(x, requires_grad=True)
    loss = F.cross_entropy(a, tg.tensor(T5), reduction="none")
    assert np.isfinite(_np(loss)).all() and _np(loss)[3] == 0.0
    loss.sum().backward()
    assert np.all(a.grad.numpy()[3] == 0.0) and np.isfinite(a.grad.numpy()).all()
    none = tg.tensor(np.full(5, -100))
    assert math.isnan(F.cross_entropy(tg.tensor(x), none).item())
    assert math.isnan(F.cross_entropy(tg.tensor(x), none, label_smoothing=0.1).item())
    assert F.nll_loss(tg.tensor(x), none, reduction="sum").item() == 0.0
    assert math.isnan(F.nll_loss(tg.zeros(0, 4), tg.zeros(0, dtype=tg.int64)).item())


def test_gaussian_nll_loss_clamps_var_but_passes_its_gradient():
    """Below eps var is clamped for the value, and (as torch's in-place clamp under no_grad)
    its gradient is that of the clamped value passed straight through."""
    rng = np.random.default_rng(101)
    x, t = np.array([0.5, -1.0, 2.0]), np.array([0.0, 0.0, 1.0])
    v = tg.tensor([1e-9, 0.5, 2.0], requires_grad=True)
    loss = F.gaussian_nll_loss(tg.tensor(x), tg.tensor(t), v, reduction="sum")
    var = np.array([1e-6, 0.5, 2.0])
    np.testing.assert_allclose(loss.item(), _np_gaussian(x, t, var, reduction="sum"))
    loss.backward()
    np.testing.assert_allclose(v.grad.numpy(), 0.5 / var - 0.5 * (x - t) ** 2 / var ** 2)
    scalar = F.gaussian_nll_loss(tg.tensor(x), tg.tensor(t), 0.5)     # a float var
    np.testing.assert_allclose(scalar.item(), _np_gaussian(x, t, np.full(3, 0.5)))
    for shape in [(3, 1), (1, 4), (3,)]:                 # the shapes var may take
        xs = rng.normal(size=(3, 4))
        var = rng.uniform(0.5, 1.5, size=shape)
        out = F.gaussian_nll_loss(tg.tensor(xs), tg.zeros(3, 4), tg.tensor(var), reduction="none")
        ref = _np_gaussian(xs, np.zeros((3, 4)), var[:, None] if shape == (3,) else var,
                           reduction="none")
        np.testing.assert_allclose(_np(out), ref)


def test_poisson_full_adds_stirling_only_above_one():
    t = np.array([0.0, 1.0, 1.0000001, 4.0])
    x = np.zeros(4)
    out = _np(F.poisson_nll_loss(tg.tensor(x), tg.tensor(t), full=True, reduction="none"))
    np.testing.assert_allclose(out, _np_poisson(x, t, full=True, reduction="none"))
    assert out[0] == 1.0 and out[1] == 1.0           # exp(0) - t * 0, nothing added


def test_deprecated_size_average_and_reduce_on_the_new_losses():
    rng = np.random.default_rng(102)
    x, t = tg.tensor(rng.normal(size=(5, 4))), tg.tensor(T5)
    with pytest.warns(UserWarning, match="reduction='sum' instead"):
        s = F.cross_entropy(x, t, size_average=False)
    assert s.item() == F.cross_entropy(x, t, reduction="sum").item()
    with pytest.warns(UserWarning, match="reduction='none' instead"):
        module = nn.NLLLoss(reduce=False)
    assert module.reduction == "none"
    with pytest.warns(UserWarning, match="elementwise_mean"):
        F.nll_loss(x, t, reduction="elementwise_mean")


def _loss_errors(L):
    f = _L(L)
    x, t = L.zeros(3, 4), L.tensor([0, 1, 3])
    return [
        (lambda: f.cross_entropy(x, L.zeros(3)), RuntimeError,
         "expected target dtype to be Long or Byte, but got Float"),
        (lambda: f.cross_entropy(x, L.zeros(3, dtype=L.int32)), RuntimeError,
         "expected target dtype to be Long or Byte, but got Int"),
        (lambda: f.cross_entropy(x, L.zeros(3, 4, dtype=L.int64)), RuntimeError,
         "Expected floating point type for target with class probabilities, got Long"),
        (lambda: f.cross_entropy(x, L.ones(3, 4), ignore_index=1), RuntimeError,
         "ignore_index is not supported for floating point target"),
        (lambda: f.cross_entropy(x, t, label_smoothing=1.5), RuntimeError,
         "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
        (lambda: f.cross_entropy(x, L.ones(3, 4), label_smoothing=1.5), RuntimeError,
         "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
        (lambda: f.cross_entropy(x, t, L.ones(3)), RuntimeError,
         "weight tensor should be defined either for all 4 classes or no classes but got "
         "weight tensor of shape: [3]"),
        (lambda: f.cross_entropy(x, L.ones(3, 4), L.ones(3)), RuntimeError,
         "cross_entropy: weight tensor should be defined either for all 4 classes or no "
         "classes but got weight tensor of shape: [3]"),
        (lambda: f.cross_entropy(x, L.tensor([0, 1, 4])), IndexError,
         "Target 4 is out of bounds."),
        (lambda: f.cross_entropy(x, L.tensor([0, -1, 1]), label_smoothing=0.1), IndexError,
         "Target -1 is out of bounds."),
        (lambda: f.cross_entropy(x, L.tensor([0, 1])), ValueError,
         "Expected input batch_size (3) to match target batch_size (2)."),
        (lambda: f.cross_entropy(x, L.zeros(3, 2, dtype=L.int64)), RuntimeError,
         "0D or 1D target tensor expected, multi-target not supported"),
        (lambda: f.cross_entropy(L.zeros(2, 4, 5), L.zeros(2, 4, dtype=L.int64)),
         RuntimeError, "Expected target size [2, 5], got [2, 4]"),
        (lambda: f.cross_entropy(x, t, reduction="avg"), ValueError,
         "avg is not a valid value for reduction"),
        (lambda: f.cross_entropy(x.double(), t, L.ones(4)), RuntimeError,
         "expected scalar type Double but found Float"),
        (lambda: f.nll_loss(L.tensor(1.0), L.tensor(0)), ValueError,
         "Expected 1 or more dimensions (got 0)"),
        (lambda: f.nll_loss(L.zeros(4), L.tensor([1, 2])), ValueError,
         "For 1D input, 1D target must have size 1, but got target size: 2"),
        (lambda: f.nll_loss(x, L.zeros(3), L.ones(3)), RuntimeError,
         "expected target dtype to be Long or Byte, but got Float"),
        (lambda: f.nll_loss(L.zeros(2, 4, 5, 3), L.zeros(2, 5, dtype=L.int64)), RuntimeError,
         "only batches of spatial targets supported (3D tensors) but got targets of "
         "dimension: 2"),
        (lambda: f.nll_loss(L.zeros(2, 4, 5, 3), L.zeros(2, 5, 2, dtype=L.int64)),
         RuntimeError, "size mismatch (got input: [2, 4, 5, 3] , target: [2, 5, 2]"),
        (lambda: f.nll_loss(L.zeros(2, 4, 5), L.full((2, 5), 7)), IndexError,
         "Target 7 is out of bounds."),
        (lambda: f.nll_loss(L.zeros(3, 4, dtype=L.int64), t), NotImplementedError,
         "\"nll_loss_out_frame\" not implemented for 'Long'"),
        (lambda: f.poisson_nll_loss(x, x, reduction="avg"), ValueError,
         "avg is not a valid value for reduction"),
        (lambda: f.gaussian_nll_loss(x, x, -1.0), ValueError, "var has negative entry/entries"),
        (lambda: f.gaussian_nll_loss(x, x, -L.ones(3, 4)), ValueError,
         "var has negative entry/entries"),
        (lambda: f.gaussian_nll_loss(x, x, L.ones(3, 2)), ValueError,
         "var is of incorrect size"),
        (lambda: f.gaussian_nll_loss(x, x, L.ones(4)), ValueError, "var is of incorrect size"),
        (lambda: f.gaussian_nll_loss(x, x, L.ones(3, 4), reduction="avg"), ValueError,
         "avg is not valid"),
    ]


@pytest.mark.parametrize("k", range(len(_loss_errors(tg))))
def test_loss_errors(k):
    fn, exc, msg = _loss_errors(tg)[k]
    with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
        fn()


@pytest.mark.parametrize("k", range(len(_loss_errors(tg))))
def test_loss_errors_are_torchs(k):
    torch = pytest.importorskip("torch")
    fn, exc, msg = _loss_errors(torch)[k]
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value) == msg


def test_loss_module_reprs_and_buffers():
    ce = nn.CrossEntropyLoss(weight=tg.ones(4), label_smoothing=0.1)
    assert repr(ce) == "CrossEntropyLoss()" and list(ce.state_dict()) == ["weight"]
    assert (ce.ignore_index, ce.label_smoothing, ce.reduction) == (-100, 0.1, "mean")
    g = nn.GaussianNLLLoss(full=True)
    assert (g.full, g.eps) == (True, 1e-6)
    with pytest.raises(TypeError):
        nn.GaussianNLLLoss(True)                    # keyword-only, as torch
    p = nn.PoissonNLLLoss()
    assert (p.log_input, p.full, p.eps) == (True, False, 1e-8)


# ---- Dropout ----
def test_dropout_zeroes_with_probability_p_and_scales_the_rest():
    rng = np.random.default_rng(103)
    tg.manual_seed(3)
    x = tg.tensor(rng.uniform(1.0, 2.0, size=(200, 100)), requires_grad=True)
    for p in (0.2, 0.5, 0.9):
        y = F.dropout(x, p)
        kept = _np(y) != 0
        np.testing.assert_allclose(_np(y)[kept], _np(x)[kept] / (1 - p), rtol=1e-15)
        assert abs((~kept).mean() - p) < 4 * math.sqrt(p * (1 - p) / kept.size)
        x.grad = None
        y.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-15)
    x32 = x.float()
    y32 = _np(F.dropout(x32, 0.3))
    kept = y32 != 0                 # the kept ones times 1 / (1 - p), rounded in float32
    np.testing.assert_array_equal(y32[kept], (_np(x32) * (np.float32(1) / np.float32(0.7)))[kept])


def test_dropout_modes_and_edge_probabilities():
    rng = np.random.default_rng(104)
    x = tg.tensor(rng.normal(size=(4, 5)))
    assert F.dropout(x, training=False) is x and F.dropout(x, 0.0) is x
    assert np.all(_np(F.dropout(x, 1.0)) == 0)
    m = nn.Dropout(0.4)
    assert repr(m) == "Dropout(p=0.4, inplace=False)" and m.training
    m.eval()
    assert m(x) is x
    m.train()
    tg.manual_seed(5)
    a = _np(m(x))
    tg.manual_seed(5)
    np.testing.assert_array_equal(_np(F.dropout(x, 0.4)), a)       # the seeded generator
    z = x.clone()
    tg.manual_seed(5)
    assert nn.Dropout(0.4, inplace=True)(z) is z
    np.testing.assert_array_equal(_np(z), a)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: nn.Dropout(1.5), ValueError,
     "dropout probability has to be between 0 and 1, but got 1.5"),
    (lambda: F.dropout(tg.ones(3), -0.1), ValueError,
     "dropout probability has to be between 0 and 1, but got -0.1"),
    (lambda: F.dropout(tg.ones(3, dtype=tg.int64), 0.5), RuntimeError,
     "result type Float can't be cast to the desired output type Long"),
    (lambda: F.dropout(tg.ones(3, requires_grad=True), 0.5, inplace=True), RuntimeError,
     "a leaf Variable that requires grad is being used in an in-place operation."),
])
def test_dropout_errors(call, exc, msg):
    with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
        call()


def test_dropout_under_compile_draws_a_fresh_mask_at_every_call():
    """A step that draws a mask is not replayable: it runs eagerly at each call, so each call
    gets a new mask (the ones an eager loop with the same seed draws), and explain() says so.
    In eval mode the same step replays."""
    rng = np.random.default_rng(105)
    gc.collect()
    x = tg.tensor(rng.uniform(1.0, 2.0, size=(6, 8)))
    model = nn.Sequential(nn.Linear(8, 8).double(), nn.Dropout(0.5))

    def step(x):
        return model(x).sum().detach()
    compiled = tg.compile(step)
    outs = []
    for fn in (step, compiled):
        tg.manual_seed(7)
        outs.append([fn(x).item() for _ in range(4)])
    assert outs[0] == outs[1] and len(set(outs[1])) == 4
    assert not compiled.paths and "dropout's random mask" in compiled.explain()
    model.eval()
    evals = tg.compile(step)
    assert [evals(x).item() for _ in range(3)] == [step(x).item()] * 3 and evals.paths


# ---- LayerNorm ----
def _np_layer_norm(x, k, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    d = x - x.mean(axes, keepdims=True)
    y = d / np.sqrt((d * d).mean(axes, keepdims=True) + eps)
    return (y if w is None else y * w) + (0 if b is None else b)


LN_X = RNG.normal(scale=3.0, size=(3, 2, 4)) + 1.0
LN_W, LN_B = RNG.normal(size=(2, 4)), RNG.normal(size=(2, 4))


@pytest.mark.parametrize("k,affine", [(1, False), (2, False), (2, True), (1, True)])
def test_layer_norm_values_and_gradients(k, affine):
    rng = np.random.default_rng(106)
    shape = LN_X.shape[-k:]
    w, b = (LN_W[-1:][0] if k == 1 else LN_W, LN_B[-1:][0] if k == 1 else LN_B) if affine \
        else (None, None)
    arrays = [LN_X] + ([w, b] if affine else [])

    def f(x, *wb):
        return F.layer_norm(x, shape, *wb, eps=1e-3)
    np.testing.assert_allclose(_np(f(*[tg.tensor(a) for a in arrays])),
                               _np_layer_norm(LN_X, k, w, b, 1e-3), rtol=1e-12, atol=1e-12)
    out32 = f(*[tg.tensor(a, dtype=tg.float32) for a in arrays])
    assert out32.dtype is tg.float32
    np.testing.assert_allclose(_np(out32), _np_layer_norm(LN_X, k, w, b, 1e-3), atol=1e-5)
    weight = rng.normal(size=LN_X.shape)
    _, grads = tapegrad_grads(f, arrays, weight)
    expected = finite_difference_grads(lambda *a: _np(f(*[tg.tensor(v) for v in a])), arrays,
                                       weight)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kw", [{}, {"elementwise_affine": False}, {"bias": False}])
def test_layer_norm_matches_torch(dtype, kw):
    torch = pytest.importorskip("torch")
    tol = 1e-10 if dtype == "float64" else 1e-5
    res = []
    for L in (tg, torch):
        m = L.nn.LayerNorm((2, 4), eps=1e-4, **kw).to(getattr(L, dtype))
        if m.weight is not None:
            with L.no_grad():
                m.weight.copy_(L.tensor(LN_W))
        x = L.tensor(LN_X, dtype=getattr(L, dtype), requires_grad=True)
        y = m(x)
        (y * L.tensor(LN_X ** 2, dtype=getattr(L, dtype))).sum().backward()
        res.append([_np(y), x.grad.numpy()] + [p.grad.numpy() for p in m.parameters()])
        assert y.dtype == getattr(L, dtype)
    assert len(res[0]) == len(res[1])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert repr(nn.LayerNorm((2, 4), **kw)) == repr(torch.nn.LayerNorm((2, 4), **kw))


def test_layer_norm_module_defaults_and_errors():
    m = nn.LayerNorm(4)
    assert m.normalized_shape == (4,) and m.eps == 1e-5
    np.testing.assert_array_equal(_np(m.weight), np.ones(4))
    np.testing.assert_array_equal(_np(m.bias), np.zeros(4))
    assert list(dict(m.named_parameters())) == ["weight", "bias"]
    assert nn.LayerNorm(4, bias=False).bias is None
    assert repr(m) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    x = tg.zeros(3, 4)
    for call, exc, msg in [
        (lambda: F.layer_norm(x, 4), TypeError, "layer_norm(): argument 'normalized_shape' "
         "(position 2) must be tuple of ints, not int"),
        (lambda: F.layer_norm(x, []), RuntimeError, "Expected normalized_shape to be at least "
         "1-dimensional, i.e., containing at least one element, but got normalized_shape = []"),
        (lambda: F.layer_norm(x, [3]), RuntimeError, "Given normalized_shape=[3], expected "
         "input with shape [*, 3], but got input of size[3, 4]"),
        (lambda: F.layer_norm(x, [2, 3, 4]), RuntimeError, "Given normalized_shape=[2, 3, 4], "
         "expected input with shape [*, 2, 3, 4], but got input of size[3, 4]"),
        (lambda: F.layer_norm(x, [4], tg.ones(3)), RuntimeError, "Expected weight to be of same "
         "shape as normalized_shape, but got weight of shape [3] and normalized_shape = [4]"),
        (lambda: F.layer_norm(x, [4], None, tg.ones(3)), RuntimeError, "Expected bias to be of "
         "same shape as normalized_shape, but got bias of shape [3] and normalized_shape = [4]")]:
        with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
            call()


# ---- BatchNorm1d ----
def _np_batch_norm_steps(batches, momentum, eps, w, b):
    """Training-mode outputs, then the running mean / var (unbiased) and the eval output."""
    c = batches[0].shape[1]
    rm, rv, outs = np.zeros(c), np.ones(c), []
    for k, x in enumerate(batches, 1):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = [1, c] + [1] * (x.ndim - 2)
        n = x.size // c
        mean = x.mean(axes)
        var = ((x - mean.reshape(shape)) ** 2).mean(axes)
        outs.append((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
                    * w.reshape(shape) + b.reshape(shape))
        m = 1.0 / k if momentum is None else momentum
        rm = (1 - m) * rm + m * mean
        rv = (1 - m) * rv + m * var * n / (n - 1)
    x = batches[0]
    shape = [1, c] + [1] * (x.ndim - 2)
    ev = (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + eps) * w.reshape(shape) \
        + b.reshape(shape)
    return outs, rm, rv, ev


BN_W, BN_B = np.array([0.5, 1.5, -1.0]), np.array([0.1, -0.2, 0.3])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_training_running_stats_and_eval(shape, momentum):
    rng = np.random.default_rng(107)
    batches = [rng.normal(loc=k, scale=k + 1, size=shape) for k in range(3)]
    outs, rm, rv, ev = _np_batch_norm_steps(batches, momentum, 1e-5, BN_W, BN_B)
    for dtype, tol in ((tg.float64, 1e-12), (tg.float32, 2e-5)):
        m = nn.BatchNorm1d(3, momentum=momentum).to(dtype)
        with tg.no_grad():
            m.weight.copy_(tg.tensor(BN_W))
            m.bias.copy_(tg.tensor(BN_B))
        for x, ref in zip(batches, outs):
            y = m(tg.tensor(x, dtype=dtype))
            assert y.dtype is dtype
            np.testing.assert_allclose(_np(y), ref, rtol=tol, atol=tol)
        assert m.num_batches_tracked.dtype is tg.int64 and m.num_batches_tracked.item() == 3
        np.testing.assert_allclose(_np(m.running_mean), rm, rtol=tol, atol=tol)
        np.testing.assert_allclose(_np(m.running_var), rv, rtol=tol, atol=tol)
        m.eval()
        np.testing.assert_allclose(_np(m(tg.tensor(batches[0], dtype=dtype))), ev, rtol=tol,
                                   atol=tol)
        assert m.num_batches_tracked.item() == 3


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm_gradient_matches_finite_differences(shape, training):
    rng = np.random.default_rng(108)
    x = rng.normal(size=shape)
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)

    def f(x, w, b):
        return F.batch_norm(x, tg.tensor(rm) if not training else None,
                            tg.tensor(rv) if not training else None, w, b, training)
    weight = rng.normal(size=shape)
    _, grads = tapegrad_grads(f, [x, BN_W, BN_B], weight)
    expected = finite_difference_grads(lambda *a: _np(f(*[tg.tensor(v) for v in a])),
                                       [x, BN_W, BN_B], weight)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kw", [{}, {"momentum": None}, {"affine": False},
                                {"track_running_stats": False}, {"bias": False}])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm_matches_torch(dtype, kw, shape):
    rng = np.random.default_rng(109)
    torch = pytest.importorskip("torch")
    tol = 1e-10 if dtype == "float64" else 2e-5
    batches = [rng.normal(loc=k, scale=k + 1, size=shape) for k in range(3)]
    res = []
    for L in (tg, torch):
        dt = getattr(L, dtype)
        m = L.nn.BatchNorm1d(3, **kw).to(dt)
        if m.weight is not None:
            with L.no_grad():
                m.weight.copy_(L.tensor(BN_W))
        outs = []
        for x in batches:
            x = L.tensor(x, dtype=dt, requires_grad=True)
            y = m(x)
            (y * L.tensor(batches[2], dtype=dt)).sum().backward()
            # copies: torch's numpy() shares the memory the next backward adds into
            outs += [_np(y), x.grad.numpy()] + [p.grad.numpy().copy() for p in m.parameters()]
        m.eval()
        outs.append(_np(m(L.tensor(batches[1], dtype=dt))))
        outs += [b.numpy() for b in m.buffers()]
        res.append(outs)
    assert len(res[0]) == len(res[1])
    for a, b in zip(*res):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=tol,
                                   atol=tol)
    assert repr(nn.BatchNorm1d(3, **kw)) == repr(torch.nn.BatchNorm1d(3, **kw))


def _bn_step(model, opt):
    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("mode", ["eval", "no running stats", "training"])
def test_batch_norm_compiled_equals_eager(mode):
    """Eval mode and track_running_stats=False replay (running statistics updated by tape
    records); in training with running statistics the step runs eagerly at every call, as
    num_batches_tracked is an integer counted in Python. Every case equals eager."""
    rng = np.random.default_rng(110)
    gc.collect()
    x = tg.tensor(rng.normal(size=(8, 4)))
    runs = []
    for compiled in (False, True):
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(
            3, track_running_stats=mode != "no running stats")).double()
        if mode == "eval":
            with tg.no_grad():
                model[1].running_mean.copy_(tg.tensor([0.1, -0.2, 0.3]))
            model.eval()
        step = _bn_step(model, tg.optim.SGD(model.parameters(), lr=0.1))
        fn = tg.compile(step) if compiled else step
        losses = [fn(x).item() for _ in range(6)]
        runs.append((losses, [_np(t) for t in model.state_dict().values()], fn))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    compiled = runs[1][2]
    if mode == "training":
        assert not compiled.paths and "num_batches_tracked" in compiled.explain()
    else:
        assert compiled.paths, compiled.explain()


def test_batch_norm_state_dict_and_old_checkpoints():
    rng = np.random.default_rng(111)
    m = nn.BatchNorm1d(3)
    sd = m.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert sd._metadata[""] == {"version": 2}
    m(tg.tensor(rng.normal(size=(5, 3))))
    old = OrderedDict((k, v) for k, v in nn.BatchNorm1d(3).state_dict().items()
                      if k != "num_batches_tracked")         # a version-1 checkpoint
    m.load_state_dict(old)
    assert m.num_batches_tracked.item() == 1                   # kept, as torch
    new = OrderedDict((k, v) for k, v in sd.items() if k != "num_batches_tracked")
    new._metadata = sd._metadata                                 # says version 2
    with pytest.raises(RuntimeError, match='Missing key.*"num_batches_tracked"'):
        nn.BatchNorm1d(3).load_state_dict(new)
    m.reset_running_stats()
    assert m.num_batches_tracked.item() == 0 and np.all(_np(m.running_var) == 1)
    n = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert list(n.state_dict()) == [] and n.running_mean is None
    n.eval()                            # no running statistics: batch statistics in eval too
    x = rng.normal(size=(5, 3))
    np.testing.assert_allclose(_np(n(tg.tensor(x))), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5))


def test_batch_norm_errors():
    x, rm, rv = tg.zeros(3, 4), tg.zeros(4), tg.ones(4)
    for call, exc, msg in [
        (lambda: nn.BatchNorm1d(4)(tg.zeros(2, 4, 3, 1)), ValueError,
         "expected 2D or 3D input (got 4D input)"),
        (lambda: nn.BatchNorm1d(4)(tg.zeros(2, 3)), RuntimeError,
         "running_mean should contain 3 elements not 4"),
        (lambda: nn.BatchNorm1d(4)(tg.zeros(1, 4)), ValueError,
         "Expected more than 1 value per channel when training, got input size "
         "torch.Size([1, 4])"),
        (lambda: F.batch_norm(x, rm, tg.ones(3), training=True), RuntimeError,
         "running_var should contain 4 elements not 3"),
        (lambda: F.batch_norm(x, rm, rv, tg.ones(3)), RuntimeError,
         "weight should contain 4 elements not 3"),
        (lambda: F.batch_norm(x, rm, rv, None, tg.ones(3)), RuntimeError,
         "bias should contain 4 elements not 3"),
        (lambda: F.batch_norm(x, None, None), RuntimeError,
         "running_mean must be defined in evaluation mode"),
        (lambda: F.batch_norm(x, rm, rv, training=True, eps=0.0), ValueError,
         "batch_norm eps must be positive during training, but got 0.0"),
        (lambda: F.batch_norm(x, rm, rv, eps=-1.0), ValueError,
         "batch_norm eps must be non-negative, but got -1.0")]:
        with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
            call()


# ---- Embedding ----
def test_embedding_values_padding_and_gradient():
    rng = np.random.default_rng(112)
    tg.manual_seed(0)
    emb = nn.Embedding(6, 3, padding_idx=-2)
    assert emb.padding_idx == 4 and np.all(_np(emb.weight)[4] == 0)
    assert repr(emb) == "Embedding(6, 3, padding_idx=4)"
    idx = np.array([[0, 4, 2], [2, 5, 4]])
    out = emb(tg.tensor(idx))
    np.testing.assert_array_equal(_np(out), _np(emb.weight)[idx])
    g = rng.normal(size=(2, 3, 3))
    (out * tg.tensor(g, dtype=tg.float32)).sum().backward()
    expected = np.zeros((6, 3))
    np.add.at(expected, idx, g)
    expected[4] = 0                                 # the padding row gets no gradient
    np.testing.assert_allclose(emb.weight.grad.numpy(), expected, rtol=1e-5, atol=1e-6)
    one = F.embedding(tg.tensor(3), emb.weight)     # a 0-d index gives one row
    np.testing.assert_array_equal(_np(one), _np(emb.weight)[3])
    i32 = F.embedding(tg.tensor(idx, dtype=tg.int32), emb.weight)
    np.testing.assert_array_equal(_np(i32), _np(emb.weight)[idx])


def test_embedding_from_pretrained_and_init():
    rng = np.random.default_rng(113)
    w = tg.tensor(rng.normal(size=(4, 2)))
    frozen = nn.Embedding.from_pretrained(w)
    assert not frozen.weight.requires_grad and frozen.weight.shape == (4, 2)
    with tg.no_grad():
        w[1, 0] = 7.0                                    # the weight shares w's storage
    assert frozen(tg.tensor([1])).numpy()[0, 0] == 7.0
    trainable = nn.Embedding.from_pretrained(w, freeze=False, padding_idx=0)
    assert trainable.weight.requires_grad and trainable.padding_idx == 0
    tg.manual_seed(1)
    big = nn.Embedding(400, 50)
    v = _np(big.weight)
    assert abs(v.mean()) < 0.02 and abs(v.std() - 1) < 0.02     # N(0, 1), 20000 draws


def test_embedding_max_norm_renormalizes_the_rows_used():
    w = np.array([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0], [1.0, 0.0]])
    emb = nn.Embedding.from_pretrained(tg.tensor(w), max_norm=1.0)
    out = _np(emb(tg.tensor([0, 1, 0])))
    expected = w.copy()
    expected[0] *= 1.0 / (5.0 + 1e-7)
    np.testing.assert_allclose(_np(emb.weight), expected)      # row 2 unused, kept
    np.testing.assert_allclose(out, expected[[0, 1, 0]])


EMB_G = RNG.normal(size=(2, 4, 3))


def test_embedding_matches_torch():
    rng = np.random.default_rng(114)
    torch = pytest.importorskip("torch")
    w = rng.normal(size=(5, 3)) * 2
    idx = [[0, 4, 2, 2], [1, 4, 3, 0]]
    res = []
    for L in (tg, torch):
        emb = L.nn.Embedding.from_pretrained(L.tensor(w), freeze=False, padding_idx=2,
                                             max_norm=2.5, norm_type=1.0)
        out = emb(L.tensor(idx))
        (out * L.tensor(EMB_G)).sum().backward()
        res.append([_np(out), emb.weight.grad.numpy(), _np(emb.weight)])
        assert repr(emb) == "Embedding(5, 3, padding_idx=2, max_norm=2.5, norm_type=1.0)"
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-7)


def test_embedding_compiled_equals_eager():
    gc.collect()
    runs = []
    idx = tg.tensor([[0, 3], [3, 1]])
    for compiled in (False, True):
        tg.manual_seed(2)
        emb = nn.Embedding(4, 3, padding_idx=3).double()
        opt = tg.optim.SGD(emb.parameters(), lr=0.5)

        def step(i):
            opt.zero_grad()
            loss = (emb(i).sum(1) ** 2).sum()
            loss.backward()
            opt.step()
            return loss
        fn = tg.compile(step) if compiled else step
        runs.append(([fn(idx).item() for _ in range(5)], _np(emb.weight), fn))
    assert runs[0][0] == runs[1][0] and runs[1][2].paths
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_embedding_errors():
    w = tg.zeros(5, 3)
    for call, exc, msg in [
        (lambda: nn.Embedding(5, 3, padding_idx=5), AssertionError,
         "Padding_idx must be within num_embeddings"),
        (lambda: F.embedding(tg.tensor([1]), w, padding_idx=-6), AssertionError,
         "Padding_idx must be within num_embeddings"),
        (lambda: nn.Embedding.from_pretrained(tg.zeros(3)), AssertionError,
         "Embeddings parameter is expected to be 2-dimensional"),
        (lambda: nn.Embedding(5, 3, _weight=tg.zeros(4, 3)), AssertionError,
         "Shape of weight does not match num_embeddings and embedding_dim"),
        (lambda: F.embedding(tg.tensor([1.0]), w), RuntimeError,
         "Expected tensor for argument #1 'indices' to have one of the following scalar types: "
         "Long, Int; but got torch.FloatTensor instead (while checking arguments for "
         "embedding)"),
        (lambda: F.embedding(tg.tensor([5]), w), IndexError, "index out of range in self"),
        (lambda: F.embedding(tg.tensor([-1]), w), IndexError, "index out of range in self"),
        (lambda: F.embedding(tg.tensor([1]), tg.zeros(5)), RuntimeError,
         "'weight' must be 2-D")]:
        with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
            call()
    with pytest.raises(NotImplementedError, match="scale_grad_by_freq"):
        nn.Embedding(5, 3, sparse=True)(tg.tensor([1]))


# ---- ModuleDict and ParameterDict ----
def test_module_dict():
    d = nn.ModuleDict({"b": nn.ReLU(), "a": nn.Linear(2, 3)})
    assert list(d) == ["b", "a"] and len(d) == 2 and "a" in d
    assert [n for n, _ in d.named_parameters()] == ["a.weight", "a.bias"]
    d["c"] = nn.Tanh()
    d.update([("d", nn.Identity())])
    assert list(d.keys()) == ["b", "a", "c", "d"]
    assert isinstance(d.pop("c"), nn.Tanh) and "c" not in d
    del d["d"]
    assert [type(m).__name__ for m in d.values()] == ["ReLU", "Linear"]
    assert repr(d) == ("ModuleDict(\n  (b): ReLU()\n  (a): Linear(in_features=2, "
                       "out_features=3, bias=True)\n)")
    d.clear()
    assert len(d) == 0
    for bad, exc, msg in [(3, TypeError, "ModuleDict.update should be called with an iterable "
                           "of key/value pairs, but got int"),
                          ([("a",)], ValueError, "ModuleDict update sequence element #0 has "
                           "length 1; 2 is required"),
                          ([3], TypeError, "ModuleDict update sequence element #0 should be "
                           "Iterable; isint")]:
        with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
            d.update(bad)


def test_parameter_dict():
    p = nn.ParameterDict({"b": nn.Parameter(tg.ones(2)), "a": tg.ones(2, 3)})
    assert list(p) == ["a", "b"]                              # a plain dict: sorted, as torch
    assert isinstance(p["a"], nn.Parameter) and p["a"].requires_grad
    assert [n for n, _ in p.named_parameters()] == ["a", "b"]
    assert repr(p) == ("ParameterDict(\n    (a): Parameter containing: [torch.FloatTensor of "
                       "size 2x3]\n    (b): Parameter containing: [torch.FloatTensor of size "
                       "2]\n)")
    q = nn.ParameterDict(OrderedDict([("z", tg.zeros(1)), ("y", tg.zeros(1))]))
    assert list(q) == ["z", "y"] and list(p | q) == ["a", "b", "z", "y"]
    assert p.get("missing") is None and p.setdefault("c", tg.ones(1)) is p["c"]
    k, v = p.popitem()
    assert k == "c" and "c" not in p and len(p) == 2
    assert list(p.copy()) == ["a", "b"] and list(reversed(p)) == ["b", "a"]
    with pytest.raises(TypeError, match="Index given to ParameterDict cannot be used as a key"):
        p[1]
    with pytest.raises(RuntimeError, match="ParameterDict should not be called."):
        p(1)
    p.clear()
    assert len(p) == 0 and list(p.parameters()) == []


def test_containers_match_torch():
    torch = pytest.importorskip("torch")
    for build in (lambda L: L.nn.ModuleDict({"b": L.nn.ReLU(), "a": L.nn.Linear(2, 3)}),
                  lambda L: L.nn.ParameterDict({"b": L.nn.Parameter(L.ones(2)),
                                                "a": L.ones(2, 3, dtype=L.float64)})):
        mods = [build(L) for L in (tg, torch)]
        assert repr(mods[0]) == repr(mods[1])
        assert list(mods[0].state_dict()) == list(mods[1].state_dict())


# ---- nn.utils ----
def _np_total_norm(grads, p):
    """torch's: the norm of the vector of the gradients' norms (for p = 0, the number of
    gradients that are not all zero; for the others, the norm of all elements together)."""
    def norm(v):
        a = np.abs(v.reshape(-1))
        if p == math.inf:
            return a.max()
        if p == -math.inf:
            return a.min()
        if p == 0:
            return float(np.count_nonzero(a))
        return (a ** p).sum() ** (1 / p)
    return norm(np.array([norm(g) for g in grads]))


def _with_grads(grads, dtype=tg.float64):
    params = []
    for g in grads:
        p = nn.Parameter(tg.zeros(*g.shape, dtype=dtype))
        p.grad = tg.tensor(g, dtype=dtype)
        params.append(p)
    return params


GRADS = [RNG.normal(size=(3, 4)), RNG.normal(size=5) * 3, np.array([0.0, 2.0])]


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.5, -math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_scales_by_the_total_norm(norm_type, max_norm):
    params = _with_grads(GRADS) + [nn.Parameter(tg.zeros(2))]          # one without a grad
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = _np_total_norm(GRADS, norm_type)
    assert isinstance(total, tg.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), expected, rtol=1e-12)
    coef = min(max_norm / (expected + 1e-6), 1.0)
    for p, g in zip(params, GRADS):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-12)
    assert params[-1].grad is None
    p32 = _with_grads(GRADS, tg.float32)
    total32 = nn.utils.clip_grad_norm_(p32, max_norm, norm_type)
    assert total32.dtype is tg.float32
    np.testing.assert_allclose(total32.item(), expected, rtol=1e-5)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.5, 0, -math.inf])
def test_clip_grad_norm_matches_torch(norm_type):
    rng = np.random.default_rng(115)
    torch = pytest.importorskip("torch")
    res = []
    for L in (tg, torch):
        model = L.nn.Linear(4, 3).double()
        with L.no_grad():
            model.weight.copy_(L.tensor(rng.normal(size=(3, 4)) if L is tg else res[0][0]))
            model.bias.fill_(0.5)
        model(L.tensor(np.arange(8.0).reshape(2, 4))).pow(2).sum().backward()
        total = L.nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type)
        res.append([_np(model.weight), total.item(), model.weight.grad.numpy(),
                    model.bias.grad.numpy()])
    for a, b in zip(res[0][1:], res[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_clip_grad_norm_edge_cases_and_errors():
    assert nn.utils.clip_grad_norm_([nn.Parameter(tg.ones(2))], 1.0).item() == 0.0
    with pytest.warns(UserWarning, match="empty generator"):
        nn.utils.clip_grad_norm_((p for p in []), 1.0)
    t = _with_grads([np.array([3.0, 4.0])])[0]
    assert nn.utils.clip_grad_norm_(t, 1.0).item() == 5.0       # a single tensor
    bad = _with_grads([np.array([1.0, np.inf])])
    with pytest.raises(RuntimeError, match=r"^The total norm of order 2.0 for gradients from "
                       r"`parameters` is non-finite, so it cannot be clipped. To disable this "
                       r"error and scale the gradients by the non-finite norm anyway, set "
                       r"`error_if_nonfinite=False`$"):
        nn.utils.clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    assert math.isinf(nn.utils.clip_grad_norm_(bad, 1.0).item())      # scaled anyway
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        nn.utils.clip_grad_norm(_with_grads(GRADS), 1.0)


def test_clip_grad_value():
    params = _with_grads(GRADS)
    assert nn.utils.clip_grad_value_(params, 0.7) is None
    for p, g in zip(params, GRADS):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -0.7, 0.7))
    one = _with_grads([np.array([-3.0, 0.2])])[0]
    nn.utils.clip_grad_value_(one, 1)
    np.testing.assert_array_equal(one.grad.numpy(), [-1.0, 0.2])


def test_parameters_to_vector_and_back():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)).double()
    vec = nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (11,) and vec.requires_grad
    np.testing.assert_array_equal(_np(vec), np.concatenate(
        [_np(p).reshape(-1) for p in model.parameters()]))
    (vec * tg.arange(11.0, dtype=tg.float64)).sum().backward()          # differentiable
    np.testing.assert_array_equal(model[0].weight.grad.numpy(), np.arange(6.0).reshape(2, 3))
    new = tg.arange(11.0, dtype=tg.float64)
    nn.utils.vector_to_parameters(new, model.parameters())
    np.testing.assert_array_equal(_np(model[1].weight), [[8.0, 9.0]])
    np.testing.assert_array_equal(_np(model[1].bias), [10.0])
    assert isinstance(model[1].weight, nn.Parameter)
    with pytest.raises(TypeError, match="^expected torch.Tensor, but got: list$"):
        nn.utils.vector_to_parameters([1.0], model.parameters())


def test_utils_import_forms_and_compiled_clipping():
    """`torch.nn.utils.x` and `from torch.nn.utils import x`; clipping inside a compiled step
    is tape records, so it replays and equals eager."""
    rng = np.random.default_rng(116)
    from tapegrad.nn.utils import clip_grad_norm_, clip_grad_value_
    assert clip_grad_norm_ is tg.nn.utils.clip_grad_norm_
    assert clip_grad_value_ is tg.nn.utils.clip_grad.clip_grad_value_
    gc.collect()
    x, y = tg.tensor(rng.normal(size=(16, 3))), tg.tensor(rng.normal(size=(16, 1)))
    runs = []
    for compiled in (False, True):
        tg.manual_seed(4)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        opt = tg.optim.SGD(model.parameters(), lr=0.3)

        def step(x, y):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            norm = clip_grad_norm_(model.parameters(), 0.1)
            clip_grad_value_(model.parameters(), 0.05)
            opt.step()
            return loss, norm
        fn = tg.compile(step) if compiled else step
        runs.append(([[v.item() for v in fn(x, y)] for _ in range(6)],
                     [_np(p) for p in model.parameters()], fn))
    assert runs[0][0] == runs[1][0] and runs[1][2].paths, runs[1][2].explain()
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
