"""More of tapegrad.nn: the classification and likelihood losses (cross_entropy, nll_loss,
poisson_nll_loss, gaussian_nll_loss), Dropout, LayerNorm, BatchNorm1d, Embedding, ModuleDict,
ParameterDict and nn.utils. Values against NumPy references written here, gradients against
finite differences (float64), both against torch when it is installed, compiled steps against
eager ones, and the errors for bad arguments (torch's messages, checked against torch too)."""
import gc
import math
import re
import warnings
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
P5 = RNG.uniform(0.1, 1.0, size=(5, 4))
P5 /= P5.sum(1, keepdims=True)                          # class probabilities
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
    x = RNG.normal(size=(5, 4))
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
        xs = RNG.normal(size=(3, 4))
        var = RNG.uniform(0.5, 1.5, size=shape)
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
    x, t = tg.tensor(RNG.normal(size=(5, 4))), tg.tensor(T5)
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
