"""tapegrad.nn: Module bookkeeping, layers, losses, init, state_dict and repr, against closed
forms, NumPy references, finite differences and (when installed) torch."""
import copy
import gc
import math
import re
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import tapegrad as tg
from oracles import finite_difference_grads

nn = tg.nn
F = tg.nn.functional
RTOL, ATOL = 1e-12, 1e-14        # float64 against closed forms
FD_ATOL = 1e-5                   # finite differences (central, EPS = 1e-6)


def _np(t):
    return t.detach().numpy()


# ---- losses: NumPy references (value and d loss / d input, elementwise) ----
def _smooth_l1(d, beta):
    a = np.abs(d)
    if beta == 0:
        return a, np.sign(d)
    return (np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta),
            np.where(a < beta, d / beta, np.sign(d)))


def _huber(d, delta):
    a = np.abs(d)
    return (np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)),
            np.where(a < delta, d, delta * np.sign(d)))


LOSSES = [("mse_loss", {}, lambda d: (d * d, 2 * d)),
          ("l1_loss", {}, lambda d: (np.abs(d), np.sign(d)))]
LOSSES += [("smooth_l1_loss", {"beta": b}, lambda d, b=b: _smooth_l1(d, b))
           for b in (0.0, 0.5, 1.0, 2.0)]
LOSSES += [("huber_loss", {"delta": c}, lambda d, c=c: _huber(d, c)) for c in (0.5, 1.0, 2.0)]
LOSS_IDS = [f"{n}-{kw}" for n, kw, _ in LOSSES]
REDUCTIONS = ["mean", "sum", "none"]
MODULE_OF = {"mse_loss": "MSELoss", "l1_loss": "L1Loss", "smooth_l1_loss": "SmoothL1Loss",
             "huber_loss": "HuberLoss"}


def _kink(kwargs):
    return kwargs.get("beta", kwargs.get("delta", 1.0))


def _loss_data(kwargs, seed=0):
    """(input, target) in float64 with edge points: |x - y| == beta (or delta) exactly, x == y,
    and random points on both sides of the kink."""
    rng = np.random.default_rng(seed)
    b = _kink(kwargs)
    y = rng.integers(-8, 8, (3, 4)) / 8.0
    off = rng.standard_normal((3, 4)) * 1.5
    off[0] = [b, -b, 0.0, 2 * b + 0.125]
    off[1, :2] = [b / 2 + 0.0625, -3 * b - 0.25]
    return y + off, y


def _reduce_np(v, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](v)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kwargs,ref", LOSSES, ids=LOSS_IDS)
def test_loss_value_and_grad_match_closed_forms(name, kwargs, ref, reduction):
    x, y = _loss_data(kwargs)
    assert np.sum(np.abs(x - y) == _kink(kwargs)) >= 2 and np.any(x == y)
    a, b = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
    out = getattr(F, name)(a, b, reduction=reduction, **kwargs)
    val, dval = ref(x - y)
    np.testing.assert_allclose(_np(out), _reduce_np(val, reduction), rtol=RTOL, atol=ATOL)
    w = np.random.default_rng(1).standard_normal(x.shape) if reduction == "none" else 1.0
    (out * tg.tensor(w)).sum().backward()
    scale = w / x.size if reduction == "mean" else w
    np.testing.assert_allclose(a.grad.numpy(), dval * scale, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b.grad.numpy(), -dval * scale, rtol=RTOL, atol=ATOL)
    module = getattr(nn, MODULE_OF[name])(reduction=reduction, **kwargs)
    np.testing.assert_array_equal(_np(module(a, b)), _np(out))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kwargs,ref", LOSSES, ids=LOSS_IDS)
def test_loss_grad_matches_finite_differences(name, kwargs, ref, reduction):
    x, y = _loss_data(kwargs, seed=2)
    w = np.random.default_rng(3).standard_normal(x.shape) if reduction == "none" else 1.0

    def f_np(x, y):
        return _reduce_np(ref(x - y)[0], reduction)
    a, b = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
    (getattr(F, name)(a, b, reduction=reduction, **kwargs) * tg.tensor(w)).sum().backward()
    gx, gy = finite_difference_grads(f_np, [x, y], w)
    np.testing.assert_allclose(a.grad.numpy(), gx, atol=FD_ATOL)
    np.testing.assert_allclose(b.grad.numpy(), gy, atol=FD_ATOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kwargs,ref", LOSSES, ids=LOSS_IDS)
def test_loss_matches_torch(name, kwargs, ref, reduction):
    torch = pytest.importorskip("torch")
    x, y = _loss_data(kwargs, seed=4)
    outs, grads = [], []
    for lib in (tg, torch):
        a, b = lib.tensor(x, requires_grad=True), lib.tensor(y, requires_grad=True)
        out = getattr(lib.nn, MODULE_OF[name])(reduction=reduction, **kwargs)(a, b)
        out.sum().backward()
        outs.append(_np(out))
        grads.append((a.grad.numpy(), b.grad.numpy()))
    np.testing.assert_allclose(outs[0], outs[1], rtol=RTOL, atol=ATOL)
    for g, h in zip(grads[0], grads[1]):
        np.testing.assert_allclose(g, h, rtol=RTOL, atol=ATOL)


def test_loss_keeps_float32_and_records_one_graph():
    a = tg.randn(4, 3, requires_grad=True)
    loss = nn.SmoothL1Loss(beta=0.5)(a, tg.zeros(4, 3))
    assert loss.dtype is tg.float32 and loss.shape == () and loss.grad_fn is not None
    loss.backward()
    assert a.grad.shape == (4, 3)


@pytest.mark.parametrize("name", list(MODULE_OF))
def test_loss_broadcast_warns_and_computes_broadcast_values(name):
    x, y = np.random.default_rng(5).standard_normal((2, 3)), np.array([0.5, -1.0, 2.0])
    with pytest.warns(UserWarning, match=r"Using a target size \(torch.Size\(\[3\]\)\) that is "
                      r"different to the input size \(torch.Size\(\[2, 3\]\)\)"):
        out = getattr(F, name)(tg.tensor(x), tg.tensor(y))
    ref = getattr(F, name)(tg.tensor(x), tg.tensor(np.broadcast_to(y, (2, 3)).copy()))
    np.testing.assert_allclose(_np(out), _np(ref), rtol=RTOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=rf"The size of tensor a \(3\) must match the size "
                           rf"of tensor b \(4\) at non-singleton dimension 1 \(in {name}"):
            getattr(F, name)(tg.ones(2, 3), tg.ones(2, 4))


def test_loss_broadcast_matches_torch():
    torch = pytest.importorskip("torch")
    x, y = np.random.default_rng(6).standard_normal((2, 3)), np.array([[0.5], [-1.0]])
    for name in MODULE_OF:
        with pytest.warns(UserWarning):
            ours = getattr(F, name)(tg.tensor(x), tg.tensor(y), reduction="none")
        with pytest.warns(UserWarning):
            theirs = getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(y),
                                                        reduction="none")
        np.testing.assert_allclose(_np(ours), theirs.numpy(), rtol=RTOL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RuntimeError) as e:
                getattr(torch.nn.functional, name)(torch.ones(2, 3), torch.ones(2, 4))
            with pytest.raises(RuntimeError, match=re.escape(str(e.value))):
                getattr(F, name)(tg.ones(2, 3), tg.ones(2, 4))


LOSS_ERRORS = [
    (lambda lib: lib.nn.functional.mse_loss(lib.ones(2), lib.ones(2), reduction="avg"),
     ValueError, "avg is not a valid value for reduction"),
    (lambda lib: lib.nn.L1Loss(reduction="max")(lib.ones(2), lib.ones(2)),
     ValueError, "max is not a valid value for reduction"),
    (lambda lib: lib.nn.SmoothL1Loss(beta=-0.5)(lib.ones(2), lib.ones(2)),
     RuntimeError, "smooth_l1_loss does not support negative values for beta."),
    (lambda lib: lib.nn.HuberLoss(delta=0.0)(lib.ones(2), lib.ones(2)),
     RuntimeError, "huber_loss does not support non-positive values for delta."),
    (lambda lib: lib.nn.functional.huber_loss(lib.ones(2), lib.ones(2), delta=-1.0),
     RuntimeError, "huber_loss does not support non-positive values for delta."),
    (lambda lib: lib.nn.functional.mse_loss(lib.ones(2), lib.ones(2), weight=lib.ones(3)),
     ValueError, "Weights and input must have the same size."),
]


@pytest.mark.parametrize("fn,exc,msg", LOSS_ERRORS)
def test_loss_errors(fn, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        fn(tg)


@pytest.mark.parametrize("fn,exc,msg", LOSS_ERRORS)
def test_loss_errors_like_torch(fn, exc, msg):
    torch = pytest.importorskip("torch")
    with pytest.raises(exc, match=re.escape(msg)):
        fn(torch)


# size_average, reduce -> reduction (the deprecated arguments, as torch maps them)
LEGACY = [(True, None, "mean"), (False, None, "sum"),
          (None, False, "none"), (True, False, "none"), (False, True, "sum"), (True, True, "mean")]


@pytest.mark.parametrize("size_average,reduce,expected", LEGACY)
def test_deprecated_size_average_and_reduce(size_average, reduce, expected):
    x, y = tg.randn(3, 2), tg.randn(3, 2)
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss"):
        want = getattr(F, name)(x, y, reduction=expected)
        with pytest.warns(UserWarning, match=f"please use reduction='{expected}' instead"):
            got = getattr(F, name)(x, y, size_average=size_average, reduce=reduce)
        np.testing.assert_array_equal(_np(got), _np(want))
        with pytest.warns(UserWarning):
            module = getattr(nn, MODULE_OF[name])(size_average=size_average, reduce=reduce)
        assert module.reduction == expected


def test_deprecated_reduction_table_matches_torch():
    pytest.importorskip("torch")
    from torch.nn import _reduction
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for size_average, reduce, expected in LEGACY:
            assert _reduction.legacy_get_string(size_average, reduce) == expected


def test_elementwise_mean_is_deprecated_mean():
    x, y = tg.randn(3), tg.randn(3)
    with pytest.warns(UserWarning, match="elementwise_mean"):
        got = F.mse_loss(x, y, reduction="elementwise_mean")
    assert got.item() == F.mse_loss(x, y).item()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_loss_matches_torch(name, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, y, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.random((3, 4))
    res = []
    for lib in (tg, torch):
        a = lib.tensor(x, requires_grad=True)
        out = getattr(lib.nn.functional, name)(a, lib.tensor(y), reduction=reduction,
                                               weight=lib.tensor(w))
        out.sum().backward()
        res.append((_np(out), a.grad.numpy()))
    for u, v in zip(*res):
        np.testing.assert_allclose(u, v, rtol=RTOL, atol=ATOL)


# ---- activations ----
ACTIVATIONS = [
    ("relu", {}, lambda x: (np.maximum(x, 0), (x > 0) * 1.0)),
    ("sigmoid", {}, lambda x: (1 / (1 + np.exp(-x)),
                               np.exp(-x) / (1 + np.exp(-x)) ** 2)),
    ("tanh", {}, lambda x: (np.tanh(x), 1 - np.tanh(x) ** 2)),
    ("leaky_relu", {"negative_slope": 0.1},
     lambda x: (np.where(x > 0, x, 0.1 * x), np.where(x > 0, 1.0, 0.1))),
    ("leaky_relu", {"negative_slope": -0.5},
     lambda x: (np.where(x > 0, x, -0.5 * x), np.where(x > 0, 1.0, -0.5))),
    ("elu", {"alpha": 0.7},
     lambda x: (np.where(x > 0, x, 0.7 * (np.exp(x) - 1)), np.where(x > 0, 1.0, 0.7 * np.exp(x)))),
]
ACT_IDS = [f"{n}-{kw}" for n, kw, _ in ACTIVATIONS]
ACT_MODULE = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "leaky_relu": "LeakyReLU",
              "elu": "ELU"}


def _act_data():
    x = np.random.default_rng(8).standard_normal(10) * 2
    x[:3] = [0.0, -1e-3, 1e-3]                     # the gradient at 0 is torch's choice
    return x


@pytest.mark.parametrize("name,kwargs,ref", ACTIVATIONS, ids=ACT_IDS)
def test_activation_values_and_grads(name, kwargs, ref):
    x = _act_data()
    a = tg.tensor(x, requires_grad=True)
    out = getattr(F, name)(a, **kwargs)
    val, grad = ref(x)
    np.testing.assert_allclose(_np(out), val, rtol=1e-12, atol=1e-15)
    out.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), grad, rtol=1e-12, atol=1e-15)
    module = getattr(nn, ACT_MODULE[name])(*kwargs.values())
    np.testing.assert_array_equal(_np(module(a)), _np(out))


@pytest.mark.parametrize("name,kwargs,ref", ACTIVATIONS, ids=ACT_IDS)
def test_activation_matches_torch(name, kwargs, ref):
    torch = pytest.importorskip("torch")
    x, res = _act_data(), []
    for lib in (tg, torch):
        a = lib.tensor(x, requires_grad=True)
        out = getattr(lib.nn, ACT_MODULE[name])(*kwargs.values())(a)
        out.sum().backward()
        res.append((_np(out), a.grad.numpy()))
    for u, v in zip(*res):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kwargs", [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
                                         ("elu", {"alpha": 1.5})])
def test_inplace_activations(name, kwargs):
    x = _act_data()
    a = tg.tensor(x, requires_grad=True)
    ref = getattr(F, name)(a * 1.0, **kwargs)
    h = a * 1.0
    out = getattr(F, name)(h, inplace=True, **kwargs)
    assert out is h
    np.testing.assert_array_equal(_np(h), _np(ref))
    (h * h).sum().backward()
    want = tg.tensor(x, requires_grad=True)
    r = getattr(F, name)(want, **kwargs)
    (r * r).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), want.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        getattr(F, name)(tg.tensor(x, requires_grad=True), inplace=True, **kwargs)


# ---- Parameter ----
def test_parameter_basics():
    data = tg.randn(2, 3)
    p = nn.Parameter(data)
    assert isinstance(p, tg.Tensor) and type(p) is nn.Parameter
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    data.fill_(2.0)                                        # shares storage with data
    assert np.all(_np(p) == 2.0)
    with tg.no_grad():
        assert nn.Parameter(tg.ones(1)).requires_grad      # no_grad does not change the default
    q = nn.Parameter(tg.randn(()))
    assert q.shape == () and q.dim() == 0 and q.requires_grad
    assert not nn.Parameter(tg.ones(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    assert type(p * 2) is tg.Tensor and type(p.detach()) is tg.Tensor


def test_parameter_repr():
    assert repr(nn.Parameter(tg.tensor(0.5))) == \
        "Parameter containing:\ntensor(0.5000, requires_grad=True)"
    assert repr(nn.Parameter(tg.tensor([0.5, 1.0]), requires_grad=False)) == \
        "Parameter containing:\ntensor([0.5000, 1.0000])"


def test_parameter_repr_matches_torch():
    torch = pytest.importorskip("torch")
    for vals, rg in (([[1.0, -2.5], [3.0, 4.0]], True), (0.25, True), ([1.0, 2.0], False)):
        assert repr(nn.Parameter(tg.tensor(vals), rg)) == \
            repr(torch.nn.Parameter(torch.tensor(vals), rg))


def test_parameter_deepcopy_is_a_new_parameter():
    p = nn.Parameter(tg.tensor([1.0, 2.0]))
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q.requires_grad and q is not p
    with tg.no_grad():
        q.fill_(0.0)
    np.testing.assert_array_equal(_np(p), [1.0, 2.0])


def test_parameter_of_integers_needs_requires_grad_false():
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(tg.tensor([1, 2]))
    p = nn.Parameter(tg.tensor([1, 2]), requires_grad=False)
    assert p.dtype is tg.int64 and not p.requires_grad


# ---- Linear ----
def test_linear_shapes_and_options():
    fc = nn.Linear(3, 2)
    assert fc.weight.shape == (2, 3) and fc.bias.shape == (2,)
    assert [n for n, _ in fc.named_parameters()] == ["weight", "bias"]
    assert fc(tg.ones(5, 3)).shape == (5, 2) and fc(tg.ones(3)).shape == (2,)
    assert fc(tg.ones(4, 5, 3)).shape == (4, 5, 2)
    nb = nn.Linear(3, 2, bias=False)
    assert nb.bias is None and "bias" in nb._parameters and list(nb.state_dict()) == ["weight"]
    assert len(list(nb.parameters())) == 1
    d = nn.Linear(3, 2, dtype=tg.float64)
    assert d.weight.dtype is tg.float64 and d.bias.dtype is tg.float64
    assert d(tg.ones(1, 3, dtype=tg.float64)).dtype is tg.float64


def test_linear_init_statistics():
    tg.manual_seed(0)
    fc = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = _np(fc.weight).ravel(), _np(fc.bias)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound and np.ptp(b) > bound
    counts = np.histogram(w, bins=8, range=(-bound, bound))[0] / w.size
    np.testing.assert_allclose(counts, 1 / 8, atol=0.01)         # ~10 sigma for 120000 draws
    assert abs(w.mean()) < 0.01 * bound
    np.testing.assert_allclose(w.var(), bound ** 2 / 3, rtol=0.02)
    tg.manual_seed(0)
    np.testing.assert_array_equal(_np(nn.Linear(400, 300).weight).ravel(), w)
    with pytest.warns(UserWarning, match="zero-element"):
        empty = nn.Linear(0, 2)
    np.testing.assert_array_equal(_np(empty.bias), [0.0, 0.0])


def test_linear_matches_torch_with_copied_weights():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    theirs = torch.nn.Linear(4, 3).double()
    mine = nn.Linear(4, 3, dtype=tg.float64)
    with tg.no_grad():
        mine.weight.copy_(tg.tensor(theirs.weight.detach().numpy()))
        mine.bias.copy_(tg.tensor(theirs.bias.detach().numpy()))
    for shape in [(4,), (5, 4), (2, 5, 4)]:
        x = rng.standard_normal(shape)
        a, t = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, tout = mine(a), theirs(t)
        np.testing.assert_allclose(_np(out), tout.detach().numpy(), rtol=1e-12)
        g = rng.standard_normal(tout.shape)
        (out * tg.tensor(g)).sum().backward()
        (tout * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(mine.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                   rtol=1e-12)
        np.testing.assert_allclose(mine.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-12)
        mine.zero_grad()
        theirs.zero_grad()


LINEAR_SHAPE_ERROR = "mat1 and mat2 shapes cannot be multiplied (10x4 and 3x1)"


def test_linear_shape_error():
    with pytest.raises(RuntimeError, match=re.escape(LINEAR_SHAPE_ERROR)):
        nn.Linear(3, 1)(tg.ones(5, 2, 4))
    with pytest.raises(RuntimeError, match=re.escape("(1x4 and 3x1)")):
        F.linear(tg.ones(4), tg.ones(1, 3))


def test_linear_shape_error_like_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=re.escape(LINEAR_SHAPE_ERROR)):
        torch.nn.Linear(3, 1)(torch.ones(5, 2, 4))


# ---- module trees built the same way in tapegrad and torch ----
def _mlp(lib):
    nn_ = lib.nn
    return nn_.Sequential(nn_.Linear(3, 4), nn_.ReLU(), nn_.Sequential(
        nn_.Linear(4, 4, bias=False), nn_.Tanh()), nn_.Linear(4, 1), nn_.Flatten(0, 1))


def _custom(lib):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", lib.ones(1) * 2)
            self.body = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.LeakyReLU(0.2))
            self.register_buffer("cache", lib.zeros(3), persistent=False)
            self.gain = lib.nn.Parameter(lib.ones(3))
            self.head = lib.nn.Linear(3, 1)
            self.count = lib.tensor(0)             # a plain tensor attribute: not registered

        def forward(self, x):
            return self.head(self.body(x * self.scale) * self.gain)
    return Net()


def _named_layers(lib):
    nn_ = lib.nn
    return nn_.Sequential(OrderedDict([("fc", nn_.Linear(2, 2)), ("act", nn_.ELU(0.5)),
                                       ("out", nn_.Sequential(nn_.Identity(),
                                                              nn_.Sigmoid()))]))


def _lists(lib):
    nn_ = lib.nn

    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn_.ModuleList([nn_.Linear(2, 2) for _ in range(3)] +
                                         [nn_.ReLU(inplace=True), nn_.Unflatten(1, (2, 1))])
            self.extra = nn_.ParameterList([nn_.Parameter(lib.ones(2, 3)), lib.zeros(3)])
            self.losses = nn_.ModuleList([nn_.MSELoss(), nn_.SmoothL1Loss(beta=0.5),
                                          nn_.HuberLoss(delta=2.0), nn_.L1Loss(reduction="sum")])
    return Net()


TREES = [_mlp, _custom, _named_layers, _lists]


def test_repr_of_nested_modules():
    assert repr(nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))) == (
        "Sequential(\n  (0): Linear(in_features=3, out_features=1, bias=True)\n"
        "  (1): Flatten(start_dim=0, end_dim=1)\n)")
    assert repr(_mlp(tg)).splitlines()[3:6] == [
        "  (2): Sequential(",
        "    (0): Linear(in_features=4, out_features=4, bias=False)",
        "    (1): Tanh()"]
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)" and repr(nn.Tanh()) == "Tanh()"

    class Custom(nn.Module):
        def extra_repr(self):
            return "k=1\nm=2"
    assert repr(Custom()) == "Custom(\n  k=1\n  m=2\n)"


@pytest.mark.parametrize("build", TREES)
def test_repr_matches_torch(build):
    torch = pytest.importorskip("torch")
    assert repr(build(tg)) == repr(build(torch))


@pytest.mark.parametrize("build", TREES)
def test_names_and_order_match_torch(build):
    torch = pytest.importorskip("torch")
    mine, theirs = build(tg), build(torch)
    for method in ("named_parameters", "named_buffers", "named_modules", "named_children"):
        assert [n for n, _ in getattr(mine, method)()] == \
            [n for n, _ in getattr(theirs, method)()], method
    assert [n for n, _ in mine.named_parameters(prefix="net", recurse=False)] == \
        [n for n, _ in theirs.named_parameters(prefix="net", recurse=False)]
    assert [(k, tuple(v.shape)) for k, v in mine.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert list(mine.state_dict()._metadata) == list(theirs.state_dict()._metadata)
    registered = {*theirs._parameters, *theirs._buffers, *theirs._modules}
    assert [k for k in dir(mine) if k in registered] == [k for k in dir(theirs) if k in registered]


def test_registration_order_and_traversal():
    net = _custom(tg)
    assert [n for n, _ in net.named_parameters()] == [
        "gain", "body.0.weight", "body.0.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["gain"]
    assert [n for n, _ in net.named_parameters(prefix="m")][:2] == ["m.gain", "m.body.0.weight"]
    assert [n for n, _ in net.named_buffers()] == ["scale", "cache"]
    assert list(net.state_dict()) == ["gain", "scale", "body.0.weight", "body.0.bias",
                                      "head.weight", "head.bias"]
    assert [n for n, _ in net.named_children()] == ["body", "head"]
    assert list(net.children()) == [net.body, net.head]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "head"]
    assert list(net.modules())[0] is net and len(list(net.modules())) == 5
    assert list(net.parameters())[0] is net.gain and len(list(net.buffers())) == 2
    assert "count" not in net.state_dict() and isinstance(net.count, tg.Tensor)
    assert {"gain", "scale", "body", "head", "forward", "training"} <= set(dir(net))
    assert not any(k.isdigit() for k in dir(net.body))


def test_shared_parameters_and_modules_appear_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in net.named_parameters(remove_duplicate=False)] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in net.named_modules()] == ["", "0", "1"]
    assert len(list(net.modules(remove_duplicate=False))) == 4
    tied = nn.Module()
    tied.a, tied.b = nn.Linear(2, 2), nn.Linear(2, 2)
    tied.b.weight = tied.a.weight
    assert [n for n, _ in tied.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    assert list(tied.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_train_eval_requires_grad_apply_and_zero_grad():
    net = _mlp(tg)
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    assert net.train() is net and all(m.training for m in net.modules())
    net[2].train(False)
    assert net.training and not net[2][0].training
    assert net.requires_grad_(False) is net and not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "ReLU", "Linear", "Tanh", "Sequential", "Linear", "Flatten",
                    "Sequential"]
    net(tg.ones(1, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_register_and_get():
    m = nn.Module()
    m.register_parameter("w", nn.Parameter(tg.ones(2)))
    m.register_parameter("absent", None)
    m.register_buffer("b", tg.zeros(2))
    m.register_buffer("tmp", tg.zeros(1), persistent=False)
    m.add_module("child", nn.Linear(2, 1))
    m.register_module("other", nn.ReLU())
    m.buf = nn.Buffer(tg.ones(3), persistent=False)
    assert m.w is m._parameters["w"] and m.absent is None and m.child is m._modules["child"]
    assert list(m.state_dict()) == ["w", "b", "child.weight", "child.bias"]
    assert [n for n, _ in m.named_buffers()] == ["b", "tmp", "buf"]
    assert m.get_submodule("") is m and m.get_submodule("child") is m.child
    assert m.get_parameter("child.bias") is m.child.bias and m.get_parameter("w") is m.w
    assert m.get_buffer("b") is m.b
    m.b = tg.ones(2)                                   # still a (persistent) buffer
    assert "b" in m._buffers and np.all(_np(m.state_dict()["b"]) == 1)
    m.w = None
    assert m.w is None and "w" not in m.state_dict()
    m.set_submodule("child", nn.Tanh())
    assert isinstance(m.child, nn.Tanh) and m.get_submodule("child") is m.child
    del m.child
    assert "child" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'child'"):
        m.child


def test_forward_hooks():
    fc = nn.Linear(2, 2)
    calls = []
    h1 = fc.register_forward_hook(lambda mod, args, out: calls.append(("post", mod)) or out * 2)
    h2 = fc.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    out = fc(tg.ones(1, 2))
    np.testing.assert_allclose(_np(out), 2 * _np(fc.bias)[None], rtol=1e-6)
    assert calls == [("post", fc)]
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(_np(fc(tg.zeros(1, 2))), _np(fc.bias)[None])
    with fc.register_forward_hook(lambda mod, args, kwargs, out: out + 1, with_kwargs=True):
        np.testing.assert_allclose(_np(fc(tg.zeros(1, 2))), _np(fc.bias)[None] + 1, rtol=1e-6)
    assert not fc._forward_hooks


# (build, exception type, message): each checked on tapegrad and, if installed, on torch
MODULE_ERRORS = [
    (lambda lib: setattr(lib.nn.Linear(2, 2), "weight", lib.ones(2, 2)), TypeError,
     "cannot assign 'torch.FloatTensor' as parameter 'weight' (torch.nn.Parameter or None "
     "expected)"),
    (lambda lib: setattr(lib.nn.Sequential(lib.nn.ReLU()), "0", 3), TypeError,
     "cannot assign 'int' as child module '0' (torch.nn.Module or None expected)"),
    (lambda lib: lib.nn.Linear(2, 2).register_parameter("w", lib.ones(2)), TypeError,
     "cannot assign 'torch.FloatTensor' object to parameter 'w' (torch.nn.Parameter or None "
     "required)"),
    (lambda lib: lib.nn.Linear(2, 2).register_parameter("w", lib.nn.Parameter(lib.ones(2)) * 2),
     TypeError, "cannot assign 'torch.FloatTensor' object to parameter 'w'"),
    (lambda lib: lib.nn.Linear(2, 2).register_parameter("a.b", None), KeyError,
     "contain \".\""),
    (lambda lib: lib.nn.Linear(2, 2).register_buffer("weight", lib.ones(1)), KeyError,
     "attribute 'weight' already exists"),
    (lambda lib: lib.nn.Linear(2, 2).register_buffer("b", 3), TypeError,
     "cannot assign 'int' object to buffer 'b' (torch Tensor or None required)"),
    (lambda lib: lib.nn.Linear(2, 2).add_module("x", 3), TypeError,
     "int is not a Module subclass"),
    (lambda lib: lib.nn.Linear(2, 2).add_module("", lib.nn.ReLU()), KeyError,
     "be empty string \"\""),
    (lambda lib: type("Early", (lib.nn.Module,), {"__init__": lambda self: setattr(
        self, "fc", lib.nn.Linear(1, 1))})(), AttributeError,
     "cannot assign module before Module.__init__() call"),
    (lambda lib: type("Early", (lib.nn.Module,), {"__init__": lambda self: setattr(
        self, "w", lib.nn.Parameter(lib.ones(1)))})(), AttributeError,
     "cannot assign parameters before Module.__init__() call"),
    (lambda lib: lib.nn.Module()(lib.ones(1)), NotImplementedError,
     "Module [Module] is missing the required \"forward\" function"),
    (lambda lib: lib.nn.Module().no_such_thing, AttributeError,
     "'Module' object has no attribute 'no_such_thing'"),
    (lambda lib: lib.nn.Linear(2, 2).train(1), ValueError,
     "training mode is expected to be boolean"),
    (lambda lib: lib.nn.Sequential(lib.nn.ReLU()).get_submodule("0.x"), AttributeError,
     "ReLU has no attribute `x`"),
    (lambda lib: lib.nn.Sequential(lib.nn.Linear(1, 1)).get_parameter("0"), AttributeError,
     "`0` is not an nn.Parameter"),
    (lambda lib: lib.nn.Linear(1, 1).get_submodule("weight"), AttributeError,
     "`weight` is not an nn.Module"),
    (lambda lib: lib.nn.Linear(1, 1).set_submodule("weight", lib.nn.ReLU()), AttributeError,
     "`weight` is not an nn.Module"),
    (lambda lib: lib.nn.Linear(1, 1).set_submodule("act", lib.nn.ReLU(), strict=True),
     AttributeError, "Linear has no attribute `act`"),
    (lambda lib: lib.nn.Linear(1, 1).get_buffer("bias"), AttributeError,
     "`bias` is not a buffer"),
    (lambda lib: lib.nn.Sequential(lib.nn.ReLU())[1], IndexError, "index 1 is out of range"),
    (lambda lib: lib.nn.ModuleList([lib.nn.ReLU()])[-2], IndexError,
     "index -2 is out of range"),
    (lambda lib: lib.nn.ParameterList()(1), RuntimeError, "ParameterList should not be called."),
    (lambda lib: lib.nn.Sequential() + 1, ValueError,
     "add operator supports only objects of Sequential class"),
    (lambda lib: lib.nn.Linear(2, 2).to(lib.int64), TypeError,
     "nn.Module.to only accepts floating point or complex dtypes, but got desired "
     "dtype=torch.int64"),
    (lambda lib: lib.nn.Linear(2, 2).to("cuda"), AssertionError,
     "Torch not compiled with CUDA enabled"),
    (lambda lib: lib.nn.Linear(2, 2).load_state_dict([1]), TypeError,
     "Expected state_dict to be dict-like, got <class 'list'>."),
    (lambda lib: lib.nn.Unflatten(1, (2, 3))(lib.ones(2, 5)), RuntimeError,
     "unflatten: Provided sizes [2, 3] don't multiply up to the size of dim 1 (5) in the "
     "input tensor"),
    (lambda lib: lib.nn.Unflatten(1, 6), TypeError,
     "unflattened_size must be a tuple of ints, but found type int"),
    (lambda lib: lib.nn.Unflatten(1, (2, "a")), TypeError,
     "unflattened_size must be tuple of ints, but found element of type str at pos 1"),
]


@pytest.mark.parametrize("fn,exc,msg", MODULE_ERRORS)
def test_module_errors(fn, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        fn(tg)


@pytest.mark.parametrize("fn,exc,msg", MODULE_ERRORS)
def test_module_errors_like_torch(fn, exc, msg):
    torch = pytest.importorskip("torch")
    with pytest.raises(exc, match=re.escape(msg)):
        fn(torch)


# ---- containers and shape layers ----
def test_sequential_container():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    net = nn.Sequential(a, b, c)
    assert net[0] is a and net[-1] is c and net[-3] is a and len(net) == 3
    assert list(net) == [a, b, c]
    tail = net[1:]
    assert type(tail) is nn.Sequential and list(tail) == [b, c]
    assert list(tail._modules) == ["1", "2"]                        # keys kept, as torch
    x = tg.randn(4, 2)
    np.testing.assert_array_equal(_np(net(x)), _np(c(b(a(x)))))
    assert net.append(nn.Tanh()) is net and len(net) == 4 and isinstance(net[3], nn.Tanh)
    del net[3]
    assert len(net) == 3
    named = nn.Sequential(OrderedDict([("fc", a), ("act", b)]))
    assert named.fc is a and named[1] is b and [n for n, _ in named.named_children()] == [
        "fc", "act"]
    assert list((nn.Sequential(a) + nn.Sequential(b))) == [a, b]
    assert list(nn.Sequential(a, b) * 2) == [a, b, a, b]
    ins = nn.Sequential(a, c).insert(1, b)
    assert list(ins) == [a, b, c] and ins.pop(1) is b and list(ins) == [a, c]
    net[1] = nn.Sigmoid()
    assert isinstance(net[1], nn.Sigmoid)


def test_module_list_and_parameter_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    assert type(layers[1:]) is nn.ModuleList and len(layers[1:]) == 2
    layers.append(nn.ReLU())
    layers += [nn.Tanh()]
    assert [type(m).__name__ for m in layers][-2:] == ["ReLU", "Tanh"]
    assert layers.pop(-1).__class__ is nn.Tanh and len(layers) == 4
    params = nn.ParameterList([tg.ones(2), nn.Parameter(tg.zeros(3))])
    assert all(type(p) is nn.Parameter and p.requires_grad for p in params)
    params.append(tg.ones(1))
    assert len(params) == 3 and len(list(params.parameters())) == 3
    assert [n for n, _ in params.named_parameters()] == ["0", "1", "2"]
    assert type(params[1:]) is nn.ParameterList and params[-1] is params[2]


def test_flatten_and_unflatten():
    x = tg.randn(4, 2, 3)
    assert nn.Flatten()(x).shape == (4, 6) and nn.Flatten(0, 1)(x).shape == (8, 3)
    assert nn.Flatten(0)(x).shape == (24,)
    assert nn.Unflatten(1, (3, 2))(nn.Flatten()(x)).shape == (4, 3, 2)
    assert nn.Unflatten(-1, (-1, 2))(tg.ones(4, 6)).shape == (4, 3, 2)
    np.testing.assert_array_equal(_np(nn.Unflatten(1, (2, 3))(nn.Flatten()(x))), _np(x))
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Unflatten(1, (2, 3))) == "Unflatten(dim=1, unflattened_size=(2, 3))"


# ---- state_dict ----
def test_state_dict_is_detached_and_shares_storage():
    net = _custom(tg)
    sd = net.state_dict()
    assert type(sd) is OrderedDict
    assert all(not v.requires_grad and type(v) is tg.Tensor for v in sd.values())
    sd["body.0.bias"].fill_(7.0)
    assert np.all(_np(net.body[0].bias) == 7.0)
    kept = net.state_dict(keep_vars=True)
    assert kept["gain"] is net.gain and kept["scale"] is net.scale
    assert list(net.state_dict(prefix="m.")) == ["m." + k for k in sd]


def test_state_dict_round_trip_and_in_place_load():
    src, dst = _custom(tg), _custom(tg)
    params_before = list(dst.parameters())
    opt = tg.optim.SGD(dst.parameters(), lr=0.5)
    with tg.no_grad():
        src.scale.fill_(3.0)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert list(dst.parameters())[0] is params_before[0]         # values copied in place
    x = tg.randn(5, 2)
    np.testing.assert_array_equal(_np(dst(x)), _np(src(x)))
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(_np(dst.state_dict()[k]), _np(v))
    dst(x).sum().backward()
    old = _np(dst.head.weight).copy()
    opt.step()                                                    # the optimizer still updates
    np.testing.assert_allclose(_np(dst.head.weight), old - 0.5 * dst.head.weight.grad.numpy(),
                               rtol=1e-6)


def test_load_state_dict_errors():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    sd = net.state_dict()
    del sd["0.bias"]
    sd["2.scale"] = tg.ones(1)
    sd["9.weight"] = tg.ones(1)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd)
    assert str(e.value) == (
        "Error(s) in loading state_dict for Sequential:\n\t"
        "Missing key(s) in state_dict: \"0.bias\". \n\t"
        "Unexpected key(s) in state_dict: \"9.weight\", \"2.scale\". ")
    result = net.load_state_dict(sd, strict=False)
    assert result == (["0.bias"], ["9.weight", "2.scale"])
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys[0] == "9.weight"
    bad = net.state_dict()
    bad["2.weight"] = tg.ones(2, 3)
    with pytest.raises(RuntimeError, match=re.escape(
            "size mismatch for 2.weight: copying a param with shape torch.Size([2, 3]) from "
            "checkpoint, the shape in current model is torch.Size([1, 3]).")):
        net.load_state_dict(bad, strict=False)
    bad["2.weight"] = 1.0
    with pytest.raises(RuntimeError, match="While copying the parameter named \"2.weight\""):
        net.load_state_dict(bad)


def test_load_state_dict_errors_match_torch():
    torch = pytest.importorskip("torch")
    msgs = []
    for lib in (tg, torch):
        net = _custom(lib)
        sd = net.state_dict()
        del sd["head.bias"]
        sd["body.1.weight"] = lib.ones(1)
        sd["body.0.weight"] = lib.ones(3, 3)
        with pytest.raises(RuntimeError) as e:
            net.load_state_dict(sd)
        msgs.append(str(e.value).replace("tapegrad", "torch"))
        msgs.append(str(net.load_state_dict({"gain": lib.ones(3)}, strict=False)))
    assert msgs[:2] == msgs[2:]


def test_zero_dim_parameter_loads_from_one_element():
    m = nn.Module()
    m.p = nn.Parameter(tg.tensor(0.0))
    m.load_state_dict({"p": tg.tensor([2.5])})
    assert m.p.shape == () and m.p.item() == 2.5


def test_load_state_dict_assign():
    m = nn.Linear(2, 1)
    new_w = tg.ones(1, 2, dtype=tg.float64)
    m.load_state_dict({"weight": new_w, "bias": tg.zeros(1)}, assign=True)
    assert type(m.weight) is nn.Parameter and m.weight.dtype is tg.float64
    assert m.weight.requires_grad


def test_torch_weights_load_into_tapegrad_and_train_the_same():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    theirs = _mlp(torch).double()
    mine = _mlp(tg).double()
    mine.load_state_dict(theirs.state_dict())                 # torch tensors are tensor-like
    results = []
    for lib, model in ((tg, mine), (torch, theirs)):
        opt = lib.optim.SGD(model.parameters(), lr=0.1)
        loss = lib.nn.HuberLoss(delta=0.5)(model(lib.tensor(X)), lib.tensor(Y))
        loss.backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        opt.step()
        results.append((loss.item(), grads, [_np(p) for p in model.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    for a, b in zip(results[0][1] + results[0][2], results[1][1] + results[1][2]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_state_dict_values_load_into_torch():
    torch = pytest.importorskip("torch")
    mine, theirs = _custom(tg), _custom(torch)
    theirs.load_state_dict({k: torch.tensor(_np(v)) for k, v in mine.state_dict().items()})
    x = np.random.default_rng(11).standard_normal((3, 2))
    np.testing.assert_allclose(_np(mine(tg.tensor(x, dtype=tg.float32))),
                               theirs(torch.tensor(x, dtype=torch.float32)).detach().numpy(),
                               rtol=1e-6)


# ---- dtype conversion ----
def test_double_float_and_to_convert_in_place():
    net = _custom(tg)
    params = list(net.parameters())
    net(tg.ones(1, 2)).sum().backward()
    opt = tg.optim.SGD(net.parameters(), lr=0.1)
    assert net.double() is net
    assert [p is q for p, q in zip(net.parameters(), params)] == [True] * len(params)
    assert all(p.dtype is tg.float64 and p.grad.dtype is tg.float64 and p.requires_grad
               and p.is_leaf for p in net.parameters())
    assert net.scale.dtype is tg.float64 and net.count.dtype is tg.int64
    before = _np(net.head.bias).copy()
    opt.step()
    np.testing.assert_allclose(_np(net.head.bias), before - 0.1 * net.head.bias.grad.numpy())
    assert net.to(tg.float32) is net and net.gain.dtype is tg.float32
    assert net.to(tg.ones(1, dtype=tg.float64)).head.weight.dtype is tg.float64
    assert net.float().head.weight.dtype is tg.float32 and net.cpu() is net
    assert net.to("cpu") is net and net(tg.ones(1, 2)).dtype is tg.float32


# ---- nn.init ----
def test_calculate_gain_and_fans():
    assert nn.init.calculate_gain("linear") == 1 and nn.init.calculate_gain("sigmoid") == 1
    assert nn.init.calculate_gain("tanh") == 5.0 / 3
    assert nn.init.calculate_gain("relu") == math.sqrt(2.0)
    assert nn.init.calculate_gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01 ** 2))
    assert nn.init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    assert nn.init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity softmax"):
        nn.init.calculate_gain("softmax")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        nn.init.calculate_gain("leaky_relu", True)
    fans = nn.init._calculate_fan_in_and_fan_out
    assert fans(tg.empty(5, 3)) == (3, 5) and fans(tg.empty(6, 4, 3, 2)) == (24, 36)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        fans(tg.empty(3))
    with pytest.raises(ValueError, match=re.escape(
            "Mode fan_avg not supported, please use one of ['fan_in', 'fan_out']")):
        nn.init.kaiming_uniform_(tg.empty(3, 3), mode="fan_avg")


def test_calculate_gain_and_fans_match_torch():
    torch = pytest.importorskip("torch")
    for args in [("linear",), ("conv2d",), ("tanh",), ("relu",), ("leaky_relu",),
                 ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu",)]:
        assert nn.init.calculate_gain(*args) == torch.nn.init.calculate_gain(*args)
    for shape in [(5, 3), (6, 4, 3, 2), (2, 7, 1)]:
        assert nn.init._calculate_fan_in_and_fan_out(tg.empty(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))


def _bound_and_std(name, fan_in, fan_out):
    """(bound of the support or None, standard deviation) of each initialiser's default."""
    gain_lr0 = math.sqrt(2.0)                                # leaky_relu with slope a=0
    return {"xavier_uniform_": (math.sqrt(6 / (fan_in + fan_out)), math.sqrt(2 / (fan_in +
                                                                                   fan_out))),
            "xavier_normal_": (None, math.sqrt(2 / (fan_in + fan_out))),
            "kaiming_uniform_": (gain_lr0 * math.sqrt(3 / fan_in), gain_lr0 / math.sqrt(fan_in)),
            "kaiming_normal_": (None, gain_lr0 / math.sqrt(fan_in)),
            "uniform_": (1.0, math.sqrt(1 / 12)), "normal_": (None, 1.0),
            "trunc_normal_": (2.0, math.sqrt(1 - 4 * _phi(2) / math.erf(math.sqrt(2))))}[name]


def _phi(x):
    """The standard normal density (for the variance of N(0, 1) truncated to [-2, 2])."""
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                  "kaiming_normal_", "uniform_", "normal_", "trunc_normal_"])
def test_random_initialisers(name):
    tg.manual_seed(1)
    w = nn.Parameter(tg.empty(200, 300, dtype=tg.float64))      # fan_in 300, fan_out 200
    assert getattr(nn.init, name)(w) is w
    assert w.requires_grad and w.is_leaf and w.grad_fn is None
    v = _np(w).ravel()
    bound, std = _bound_and_std(name, 300, 200)
    if bound is not None:
        assert np.all(np.abs(v - (0.5 if name == "uniform_" else 0)) <= bound)
    np.testing.assert_allclose(v.std(), std, rtol=0.02)
    assert abs(v.mean() - (0.5 if name == "uniform_" else 0)) < 0.02 * std
    g = tg.Generator().manual_seed(3)
    a = getattr(nn.init, name)(tg.empty(4, 5), generator=g)
    b = getattr(nn.init, name)(tg.empty(4, 5), generator=tg.Generator().manual_seed(3))
    np.testing.assert_array_equal(_np(a), _np(b))


def test_deterministic_initialisers():
    w = nn.Parameter(tg.empty(3, 4))
    assert nn.init.constant_(w, 0.25) is w and np.all(_np(w) == 0.25)
    assert np.all(_np(nn.init.zeros_(w)) == 0) and np.all(_np(nn.init.ones_(w)) == 1)
    np.testing.assert_array_equal(_np(nn.init.eye_(w)), np.eye(3, 4))
    q = _np(nn.init.orthogonal_(tg.empty(5, 3, dtype=tg.float64), gain=2.0))
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(3), atol=1e-12)
    q = _np(nn.init.orthogonal_(tg.empty(3, 5, dtype=tg.float64)))
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
    assert w.grad_fn is None and w.requires_grad
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        nn.init.kaiming_uniform_(tg.empty(0, 3))
    with pytest.warns(FutureWarning, match="nn.init.xavier_uniform_"):
        nn.init.xavier_uniform(tg.empty(2, 2))
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        nn.init.eye_(tg.empty(3))


# ---- tapegrad.compile ----
def test_training_step_compiles_and_equals_eager():
    gc.collect()                     # a graph still alive from earlier makes compile run eagerly
    rng = np.random.default_rng(12)
    X, Y = tg.tensor(rng.standard_normal((8, 3))), tg.tensor(rng.standard_normal((8, 1)))

    def make():
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
        loss_fn = nn.SmoothL1Loss(beta=0.5)

        def step(X, Y, lr):
            model.zero_grad()
            loss = loss_fn(model(X), Y)
            loss.backward()
            with tg.no_grad():
                for p in model.parameters():
                    p -= lr * p.grad
            return loss
        return model, step
    (m1, s1), (m2, s2) = make(), make()
    compiled = tg.compile(s1)
    for _ in range(5):
        assert compiled(X, Y, 0.1).item() == s2(X, Y, 0.1).item()
    assert len(compiled.paths) >= 1, compiled.explain()
    hist = compiled.run(20, X, Y, 0.1)
    ref = [s2(X, Y, 0.1).item() for _ in range(20)]
    np.testing.assert_allclose(hist, ref, rtol=1e-12)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(_np(p), _np(q), rtol=1e-12)
