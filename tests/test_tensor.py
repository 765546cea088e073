"""Tensor API: dtypes and promotion, creation, printing, indexing and PyTorch's errors."""
import numpy as np
import pytest

import tapegrad as tg


@pytest.mark.parametrize("make,dtype", [
    (lambda: tg.tensor([0.2, 0.5]), tg.float32), (lambda: tg.randn(2), tg.float32),
    (lambda: tg.zeros(2), tg.float32), (lambda: tg.arange(4.0), tg.float32),
    (lambda: tg.linspace(0, 1, 5), tg.float32), (lambda: tg.tensor([1, 2, 3]), tg.int64),
    (lambda: tg.arange(4), tg.int64), (lambda: tg.tensor(np.zeros(2)), tg.float64),
    (lambda: tg.tensor([1.0]) > 0, tg.bool), (lambda: tg.tensor([1.0]) * 2.5, tg.float32),
    (lambda: tg.tensor([1.0]) ** tg.tensor([2]), tg.float32),
    (lambda: tg.tensor([1, 2]) * 1.5, tg.float32), (lambda: tg.tensor([1, 2]) / 2, tg.float32),
    (lambda: tg.tensor([1.0]) + tg.tensor(2.0, dtype=tg.float64), tg.float32),
    (lambda: tg.tensor([1]) + tg.tensor(2.0, dtype=tg.float64), tg.float64),
    (lambda: tg.full((2,), 3), tg.int64), (lambda: tg.FloatTensor([[2, 3]]), tg.float32)])
def test_dtypes_follow_pytorch(make, dtype):
    assert make().dtype is dtype
    assert tg.float is tg.float32


def test_repr_and_format_like_pytorch():
    assert repr(tg.tensor([19.0], requires_grad=True) + 0) == \
        "tensor([19.], grad_fn=<AddBackward0>)"
    assert repr(tg.tensor([0.2, 0.5])) == "tensor([0.2000, 0.5000])"
    assert repr(tg.tensor([1, 2, 3])) == "tensor([1, 2, 3])"
    assert repr(tg.tensor(3.0, requires_grad=True)) == "tensor(3., requires_grad=True)"
    assert repr(tg.tensor([1.0], dtype=tg.float64)) == "tensor([1.], dtype=torch.float64)"
    assert repr(tg.tensor([[4.0, 3.0], [2.0, 6.0]])) == "tensor([[4., 3.],\n        [2., 6.]])"
    assert f"{tg.tensor(1.5):f}" == "1.500000"
    assert "{:+.2f}".format(tg.tensor(2.0)) == "+2.00"
    assert repr(tg.zeros(2, 3).shape) == "torch.Size([2, 3])"


def test_scalars_len_iteration_and_bool():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert len(t) == 2 and [r.tolist() for r in t] == [[1.0, 2.0], [3.0, 4.0]]
    assert t[1, 0].item() == 3.0 and bool(tg.tensor([1.0]))
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bool(t)
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        t.item()
    with pytest.raises(TypeError, match="0-d tensor"):
        len(tg.tensor(1.0))


def test_indexing_matches_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = tg.tensor(a)
    for idx in [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (None, 0), (0, slice(1, 3)),
                (slice(None), slice(None, None, 2), -1), ([1, 0],), (0, [2, 2, 1])]:
        np.testing.assert_array_equal(t[idx].numpy(), a[idx])
    np.testing.assert_array_equal(t[t > 20].numpy(), a[a > 20])


def test_out_of_range_index_raises_index_error():
    t = tg.zeros(3, 2)
    with pytest.raises(IndexError, match="out of bounds"):
        t[3]
    with pytest.raises(IndexError, match="out of bounds"):
        t[tg.tensor([0, 5])]
    with pytest.raises(IndexError, match="out of bounds"):
        t[0, -3] = 1.0


@pytest.mark.parametrize("f,match", [
    (lambda: tg.zeros(3, 4) @ tg.zeros(5, 6), r"cannot be multiplied \(3x4 and 5x6\)"),
    (lambda: tg.zeros(3) @ tg.zeros(4), "inconsistent tensor size"),
    (lambda: tg.zeros(3) + tg.zeros(4), "size of tensor a \\(3\\) must match"),
    (lambda: tg.zeros(2, 3).view(4, 2), "invalid for input of size 6"),
    (lambda: tg.zeros(2, 3).expand(4, 3), "expanded size"),
    (lambda: tg.cat([tg.zeros(2, 3), tg.zeros(2, 4)]), "Sizes of tensors must match"),
    (lambda: tg.zeros(2).sum(dim=3), "Dimension out of range"),
    (lambda: tg.zeros(2, dtype=tg.float64) @ tg.zeros(2), "same dtype")])
def test_errors_name_the_op_and_shapes(f, match):
    with pytest.raises((RuntimeError, IndexError), match=match):
        f()


def test_normal_and_randn_call_forms_and_seeding():
    tg.manual_seed(3)
    a = tg.randn(2, 3)
    tg.manual_seed(3)
    assert tg.randn((2, 3)).tolist() == a.tolist()
    assert tg.randn(()).shape == () and tg.randn(size=(), requires_grad=True).requires_grad
    assert tg.normal(0.0, 1.0, (4,)).shape == (4,)
    assert tg.normal(tg.zeros(3), 1.0).shape == (3,)
    assert tg.normal(2.0, tg.ones(2, 2)).shape == (2, 2)
    assert tg.normal(tg.zeros(3), tg.ones(3)).shape == (3,)
    x = tg.normal(5.0, 0.1, (20000,))
    assert abs(x.mean().item() - 5.0) < 0.01


def test_device_and_cuda():
    assert not tg.cuda.is_available()
    t = tg.zeros(2, device="cpu")
    assert str(t.device) == "cpu" and tg.device("cpu") == t.device


# ---- printing: PyTorch's layout, checked against torch itself ----
_RNG = np.random.default_rng(0)
_PRINT_CASES = [
    (3.0, "float32"), (2.5, "float32"), (-0.0, "float32"), (1e-5, "float32"), (1.5e9, "float32"),
    (float("nan"), "float32"), (float("inf"), "float64"), (7, "int64"), (True, "bool"),
    ([0.2, 0.5], "float32"), ([1.0, float("nan")], "float32"), ([0.0, 0.0], "float32"),
    ([1.0, float("inf"), -float("inf")], "float32"), ([1e-5, 1.0], "float32"),
    ([1e9, 1.0], "float32"), ([1.0, 1001.0], "float32"), ([0.0012, 0.5], "float32"),
    ([-0.0, 1.5], "float32"), ([-1.0, 3.0], "float64"), ([1, -22, 333], "int64"),
    ([True, False], "bool"), ([[4.0, 3.0], [2.0, 6.0]], "float32"),
    ([[1.25, -3.5], [1e3, 2.0]], "float64"), (_RNG.standard_normal(30).tolist(), "float32"),
    ((_RNG.standard_normal(25) * 1000).tolist(), "float32"),
    (_RNG.standard_normal((3, 4, 5)).tolist(), "float32"),
    (_RNG.standard_normal((2, 30)).tolist(), "float64"),
    (_RNG.standard_normal(1001).tolist(), "float32"),          # summarized: more than 1000
    (_RNG.standard_normal((40, 40)).tolist(), "float32"),
    (_RNG.integers(0, 9, 2000).tolist(), "int64"),
]


@pytest.mark.parametrize("data,dtype,grad", [
    (data, dtype, grad) for data, dtype in _PRINT_CASES
    for grad in (["none", "leaf", "result"] if dtype.startswith("float") else ["none"])])
def test_repr_is_pytorchs(data, dtype, grad):
    torch = pytest.importorskip("torch")
    out = []
    for m in (tg, torch):
        t = m.tensor(data, dtype=getattr(m, dtype), requires_grad=grad != "none")
        out.append(repr(t * 2 if grad == "result" else t))
        out.append(str(t.detach()))
    assert out[:2] == out[2:]


@pytest.mark.parametrize("make", [
    lambda m: m.zeros(0), lambda m: m.zeros(0, dtype=m.int64), lambda m: m.zeros(2, 0),
    lambda m: m.zeros(0, 3, dtype=m.bool), lambda m: m.arange(10.0) * 1e-3,
    lambda m: m.tensor([1.5], dtype=m.float64, requires_grad=True),
    lambda m: m.linspace(-3, 3, 7).reshape(7, 1), lambda m: m.nn.Parameter(m.ones(2, 2) / 3)])
def test_repr_of_empty_and_shaped_tensors_is_pytorchs(make):
    torch = pytest.importorskip("torch")
    ours, theirs = make(tg), make(torch)
    assert (repr(ours), str(ours)) == (repr(theirs), str(theirs))


@pytest.fixture
def print_defaults():
    yield
    tg.set_printoptions(profile="default")
    tg.set_default_dtype(tg.float32)


@pytest.mark.parametrize("options", [
    dict(precision=2), dict(sci_mode=True), dict(sci_mode=False), dict(profile="short"),
    dict(threshold=5, edgeitems=2, linewidth=40), dict(linewidth=30), dict(edgeitems=0)])
def test_printoptions_are_pytorchs(options, print_defaults):
    torch = pytest.importorskip("torch")
    data = [[1.23456, 2.5e-3, 300.0] * 4] * 5
    out = []
    for m in (tg, torch):
        m.set_printoptions(**options)
        out.append(repr(m.tensor(data, requires_grad=True)))
        out.append(repr(m.arange(100.0)))
        m.set_printoptions(profile="default")
    assert out[:2] == out[2:]


def test_repr_follows_the_rules_without_torch(print_defaults):
    assert repr(tg.tensor([1.0, float("nan")])) == "tensor([1., nan])"
    assert repr(tg.tensor([1e-5, 1.0])) == "tensor([1.0000e-05, 1.0000e+00])"
    assert repr(tg.tensor([True, False])) == "tensor([ True, False])"
    assert repr(tg.tensor([[1, -20], [300, 4]])) == "tensor([[  1, -20],\n        [300,   4]])"
    assert repr(tg.zeros(2, 0)) == "tensor([], size=(2, 0))"
    assert repr(tg.zeros(0, dtype=tg.int64)) == "tensor([], dtype=torch.int64)"
    assert repr(tg.tensor([1.5], dtype=tg.float64, requires_grad=True)) == \
        "tensor([1.5000], dtype=torch.float64, requires_grad=True)"
    long = repr(tg.arange(2000.0))
    assert long == "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n" \
                   "        1.9990e+03])"
    tg.set_default_dtype(tg.float64)
    assert repr(tg.tensor([2.5])) == "tensor([2.5000])"
    assert repr(tg.tensor([2.5], dtype=tg.float32)) == "tensor([2.5000], dtype=torch.float32)"


@pytest.mark.parametrize("value,spec", [(1.5, "f"), (2.0, "+.2f"), (-0.125, ".3e"), (3.25, ""),
                                        (7, "d"), (7, "+05d"), (True, "")])
def test_format_of_a_0d_tensor_formats_its_number(value, spec):
    assert format(tg.tensor(value), spec) == format(value, spec)
    assert f"{tg.tensor(2.5, requires_grad=True) * 2:.1f}" == "5.0"


@pytest.mark.parametrize("make", [lambda: tg.tensor([1.5, 2.0]), lambda: tg.tensor([1.5]),
                                  lambda: tg.zeros(2, 2), lambda: tg.nn.Parameter(tg.tensor(1.))])
def test_format_spec_on_other_tensors_raises_type_error(make):
    t = make()
    with pytest.raises(TypeError, match="unsupported format string passed to"):
        format(t, ".2f")
    assert format(t, "") == str(t) and f"{t}" == str(t)


# ---- the Tensor methods optimizers use: exact NumPy references in the same order ----
def _np_lerp(a, b, w):
    w = np.asarray(w, a.dtype)
    return np.where(np.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


_UPDATE_OPS = {   # name: (call on module m and tensors (x, a, b), NumPy reference, in place?)
    "addcmul_": (lambda m, x, a, b: x.addcmul_(a, b, value=0.3),
                 lambda x, a, b: x + (0.3 * a) * b, True),
    "addcdiv_": (lambda m, x, a, b: x.addcdiv_(a, b, value=-0.01),
                 lambda x, a, b: x + (-0.01 * a) / b, True),
    "addcmul": (lambda m, x, a, b: x.addcmul(a, b), lambda x, a, b: x + a * b, False),
    "addcdiv": (lambda m, x, a, b: m.addcdiv(x, a, b, value=2),
                lambda x, a, b: x + (2 * a) / b, False),
    "lerp_.1": (lambda m, x, a, b: x.lerp_(a, 0.1), lambda x, a, b: _np_lerp(x, a, 0.1), True),
    "lerp_.9": (lambda m, x, a, b: x.lerp_(a, 0.9), lambda x, a, b: _np_lerp(x, a, 0.9), True),
    "lerp_1": (lambda m, x, a, b: x.lerp_(a, 1.0), lambda x, a, b: a, True),
    "lerp_tensor": (lambda m, x, a, b: m.lerp(x, a, b - 1),
                    lambda x, a, b: _np_lerp(x, a, b - 1), False),
    "sqrt_": (lambda m, x, a, b: b.sqrt_(), lambda x, a, b: np.sqrt(b), True),
    "mul_": (lambda m, x, a, b: x.mul_(a), lambda x, a, b: x * a, True),
    "div_": (lambda m, x, a, b: x.div_(b), lambda x, a, b: x / b, True),
    "add_alpha": (lambda m, x, a, b: x.add_(a, alpha=-0.37), lambda x, a, b: x + -0.37 * a, True),
    "sub_alpha": (lambda m, x, a, b: x.sub_(a, alpha=2), lambda x, a, b: x - 2 * a, True),
    "maximum": (lambda m, x, a, b: x.maximum(a), lambda x, a, b: np.maximum(x, a), False),
    "clamp_min": (lambda m, x, a, b: x.clamp_min(0.2), lambda x, a, b: np.maximum(x, 0.2), False),
    "clamp_min_": (lambda m, x, a, b: x.clamp_min_(a), lambda x, a, b: np.maximum(x, a), True),
    "clamp_max": (lambda m, x, a, b: m.clamp_max(x, -0.1), lambda x, a, b: np.minimum(x, -0.1),
                  False),
}


def _update_inputs(dtype, shape=(50,)):
    rng = np.random.default_rng(5)
    x, a = rng.standard_normal((2,) + shape).astype(dtype)
    b = (rng.random(shape) + 0.5).astype(dtype)        # positive: a divisor, a sqrt, weights
    return x, a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_UPDATE_OPS))
def test_update_methods_match_numpy_exactly(name, dtype):
    call, ref, in_place = _UPDATE_OPS[name]
    x, a, b = _update_inputs(dtype)
    ts = [tg.tensor(v) for v in (x, a, b)]
    r = call(tg, *ts)
    expected = np.asarray(ref(x, a, b), dtype)
    assert r.dtype is tg.dtypes.from_np(np.dtype(dtype))
    np.testing.assert_array_equal(r.numpy(), expected)
    if in_place:
        target = ts[2] if name == "sqrt_" else ts[0]
        assert r is target and np.array_equal(target.numpy(), expected)


@pytest.mark.parametrize("name", sorted(_UPDATE_OPS))
def test_update_methods_match_torch(name):
    torch = pytest.importorskip("torch")
    call = _UPDATE_OPS[name][0]
    inputs = _update_inputs(np.float32)
    theirs = call(torch, *(torch.tensor(v) for v in inputs))
    ours = call(tg, *(tg.tensor(v) for v in inputs))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,call", [
    ("addcmul", lambda m, x, a, b: x.addcmul(a, b, value=0.5)),
    ("addcdiv", lambda m, x, a, b: x.addcdiv(a, b, value=-2)),
    ("lerp", lambda m, x, a, b: x.lerp(a, 0.25)), ("lerp2", lambda m, x, a, b: x.lerp(a, 0.75)),
    ("lerp_tensor", lambda m, x, a, b: m.lerp(x, a, b - 1)),
    ("clamp_min", lambda m, x, a, b: x.clamp_min(0.1)),
    ("clamp_max", lambda m, x, a, b: m.clamp_max(x, a)), ("std", lambda m, x, a, b: x.std(0)),
    ("var", lambda m, x, a, b: m.var(x, 1, keepdim=True) * a),
    ("maximum", lambda m, x, a, b: m.maximum(x, a))])
def test_gradients_and_grad_fn_of_update_ops_match_torch(name, call):
    torch = pytest.importorskip("torch")
    inputs = _update_inputs(np.float64, (3, 4))
    grads, names = [], []
    for m in (tg, torch):
        ts = [m.tensor(v, requires_grad=True) for v in inputs]
        r = call(m, *ts)
        names.append(type(r.grad_fn).__name__)
        (r * m.tensor(inputs[0])).sum().backward()
        grads.append([t.grad.numpy() if t.grad is not None else None for t in ts])
    assert names[0] == names[1]
    for g, h in zip(*grads):
        assert (g is None) == (h is None)
        if g is not None:
            np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f,exc,match", [
    (lambda: tg.tensor([1, 2]).add_(tg.tensor([1.0, 2.0])), RuntimeError,
     "result type Float can't be cast to the desired output type Long"),
    (lambda: tg.tensor([1, 2]).mul_(1.5), RuntimeError, "can't be cast"),
    (lambda: tg.tensor([1, 2]).div_(2), RuntimeError, "Float can't be cast"),
    (lambda: tg.tensor([True, False]).add_(1), RuntimeError, "Long can't be cast to the "
     "desired output type Bool"),
    (lambda: tg.tensor([1, 2]).sqrt_(), RuntimeError, "can't be cast"),
    (lambda: tg.tensor([1, 2]).clamp_(min=1.5), RuntimeError, "can't be cast"),
    (lambda: tg.tensor([1, 2]).mul_(tg.tensor([[1, 2]])), RuntimeError,
     r"output with shape \[2\] doesn't match the broadcast shape \[1, 2\]"),
    (lambda: tg.zeros(2).maximum(1.5), TypeError, "must be Tensor, not float"),
    (lambda: tg.zeros(2).lerp(tg.ones(2, dtype=tg.float64), 0.5), RuntimeError,
     "expected dtype float for `end` but got dtype double"),
    (lambda: tg.zeros(2).lerp(tg.ones(2), tg.ones(2, dtype=tg.float64)), RuntimeError,
     "for `weight`"),
    (lambda: tg.zeros(2).lerp_(tg.ones(2, 2), 0.5), RuntimeError, "broadcast shape"),
    (lambda: tg.tensor([1, 2]).lerp(tg.tensor([3, 4]), 0.5), NotImplementedError, "Long"),
    (lambda: tg.tensor([1, 2]).addcdiv(tg.tensor([1, 2]), tg.tensor([3, 4])), RuntimeError,
     "Integer division with addcdiv is no longer supported"),
    (lambda: tg.zeros(3).fill_(tg.tensor([1.0, 2.0])), RuntimeError,
     "fill_ only supports 0-dimension value tensor but got tensor with 1 dimensions"),
    (lambda: tg.zeros(3).copy_(tg.ones(2)), RuntimeError, r"size of tensor a \(3\) must match"),
    (lambda: tg.zeros(3).copy_(tg.ones(2, 3)), RuntimeError, "broadcast shape"),
    (lambda: tg.zeros(3).normal_(0, -1), RuntimeError, "normal expects std >= 0.0"),
    (lambda: tg.zeros(3).uniform_(2, 1), RuntimeError, "expects to return a \\[from, to\\)"),
    (lambda: tg.zeros(3, dtype=tg.int64).normal_(), NotImplementedError, "for 'Long'"),
    (lambda: tg.linspace(0, 1, -1), RuntimeError, "number of steps must be non-negative"),
    (lambda: tg.from_numpy(np.float16(1)), TypeError, r"expected np.ndarray \(got numpy"),
    (lambda: tg.device("tpu"), RuntimeError, "Expected one of cpu, cuda"),
    (lambda: tg.device("cuda:x"), RuntimeError, "Invalid device string"),
])
def test_pytorchs_errors(f, exc, match):
    with pytest.raises(exc, match=match):
        f()


def test_integer_in_place_ops_that_fit_stay_exact():
    t = tg.tensor([1, 2, 3])
    t.add_(tg.tensor([1, 1, 1])).mul_(3)
    t -= 2
    assert t.tolist() == [4, 7, 10] and t.dtype is tg.int64
    assert tg.tensor([1, 2]).clamp(min=1.5).tolist() == [1.5, 2.0]
    assert tg.tensor([1, 2]).clamp(min=2).dtype is tg.int64
    assert tg.zeros(3).add_(tg.tensor([1, 2, 3])).tolist() == [1.0, 2.0, 3.0]


# ---- creation and conversion as the tutorials use them ----
@pytest.mark.parametrize("start,end,steps", [(-np.pi, np.pi, 2000), (0, 1, 5), (-3, 3, 7),
                                             (2.0, -1.0, 4), (0, 1, 1), (0, 1, 0)])
def test_linspace_sin_cos_match_numpy(start, end, steps):
    x = tg.linspace(start, end, steps)
    ref = np.linspace(start, end, steps)
    assert x.dtype is tg.float32 and x.shape == (steps,)
    np.testing.assert_allclose(x.numpy(), ref, rtol=0, atol=4e-7 * max(abs(start), abs(end)))
    if steps > 1:
        assert x[0].item() == np.float32(start) and x[-1].item() == np.float32(end)
    np.testing.assert_allclose(tg.sin(x).numpy(), np.sin(x.numpy()), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tg.cos(x).numpy(), np.cos(x.numpy()), rtol=1e-6, atol=1e-7)
    x64 = tg.linspace(start, end, steps, dtype=tg.float64, device="cpu", requires_grad=True)
    assert x64.dtype is tg.float64 and x64.requires_grad
    np.testing.assert_allclose(x64.detach().numpy(), ref, rtol=1e-15, atol=1e-15)


def test_linspace_matches_torch():
    torch = pytest.importorskip("torch")
    for args in [(-np.pi, np.pi, 2000), (0.1, 7.3, 1001), (-10, 10, 100)]:
        np.testing.assert_allclose(tg.linspace(*args).numpy(), torch.linspace(*args).numpy(),
                                   rtol=0, atol=5e-7 * max(abs(args[0]), abs(args[1])))


def test_powers_by_an_int64_tensor_broadcast_like_the_tutorial():
    x = tg.linspace(-np.pi, np.pi, 2000)
    p = tg.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    assert xx.shape == (2000, 3) and xx.dtype is tg.float32 and p.dtype is tg.int64
    np.testing.assert_allclose(xx.numpy(), x.numpy()[:, None] ** np.array([1, 2, 3], np.float32),
                               rtol=1e-6)
    w = tg.ones(3, requires_grad=True)
    (xx * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), xx.numpy().sum(0), rtol=1e-5)


def test_powers_by_an_int64_tensor_match_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-np.pi, np.pi, 2000).astype(np.float32)
    theirs = torch.tensor(x).unsqueeze(-1).pow(torch.tensor([1, 2, 3]))
    ours = tg.tensor(x).unsqueeze(-1).pow(tg.tensor([1, 2, 3]))
    assert ours.dtype is tg.float32 and theirs.dtype is torch.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.bool_])
def test_from_numpy_and_numpy_round_trip(dtype):
    a = (np.arange(6).reshape(2, 3) % 4).astype(dtype)
    t = tg.from_numpy(a)
    assert t.dtype is tg.dtypes.from_np(a.dtype) and t.shape == (2, 3)
    b = t.numpy()
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_in_place_initialisers_through_data_write_the_parameter():
    net = tg.nn.Sequential(tg.nn.Linear(2, 1))
    w, b = net[0].weight, net[0].bias
    tg.manual_seed(0)
    assert w.data.normal_(0, 0.01) is not None
    assert b.data.fill_(0).tolist() == [0.0] and b.tolist() == [0.0]
    assert w.requires_grad and w.is_leaf and w.grad_fn is None
    big = tg.empty(100_000).normal_(2.0, 0.5)
    assert abs(big.mean().item() - 2.0) < 0.01 and abs(big.std().item() - 0.5) < 0.01
    u = tg.empty(100_000).uniform_(-1, 3)
    assert u.min().item() >= -1 and u.max().item() < 3 and abs(u.mean().item() - 1) < 0.02
    x = tg.zeros(2, 3)
    assert x.fill_(1.5) is x and x.add_(tg.ones(3)) is x and x.tolist() == [[2.5] * 3] * 2
    assert x.copy_(tg.tensor([1, 2, 3])) is x and x.tolist() == [[1.0, 2.0, 3.0]] * 2
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.normal_()
    np.testing.assert_array_equal(w.detach().numpy().shape, (1, 2))


def test_randperm_and_the_data_iter_pattern():
    tg.manual_seed(1)
    perm = tg.randperm(10)
    assert perm.dtype is tg.int64 and sorted(perm.tolist()) == list(range(10))
    assert tg.randperm(4, dtype=tg.float32).dtype is tg.float32
    features = tg.randn(10, 2, requires_grad=True)
    rows = [0, 7, 7, 3]
    batch = features[tg.tensor(rows)]
    np.testing.assert_array_equal(batch.detach().numpy(), features.detach().numpy()[rows])
    batch.sum().backward()
    expected = np.zeros((10, 2), np.float32)
    np.add.at(expected, rows, 1.0)
    np.testing.assert_array_equal(features.grad.numpy(), expected)
    assert [r.tolist() for r in tg.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(tg.tensor(1.0))


def test_devices_and_dtype_aliases():
    tg.set_default_device("cpu")
    tg.set_default_device(tg.device("cpu"))
    assert tg.get_default_device() == tg.device("cpu")
    assert repr(tg.device("cpu")) == "device(type='cpu')" and str(tg.device("cpu")) == "cpu"
    d = tg.device("cuda:1")
    assert (d.type, d.index, str(d)) == ("cuda", 1, "cuda:1")
    assert repr(tg.device("cpu", 0)) == "device(type='cpu', index=0)"
    assert tg.device("cpu") != "cpu" and tg.device("cpu") != tg.device("cpu", 0)
    assert len({tg.device("cpu"), tg.device("cpu")}) == 1
    assert tg.float is tg.float32 and tg.double is tg.float64 and tg.long is tg.int64
    assert tg.zeros(2, device=tg.device("cpu")).device == tg.device("cpu")


# ---- copy, deepcopy and pickle make new storage ----
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64, tg.int64, tg.bool])
def test_copies_do_not_share_storage(dtype):
    import copy
    import pickle
    x = tg.tensor([1, 0, 3], dtype=dtype)
    copies = [copy.copy(x), copy.deepcopy(x), pickle.loads(pickle.dumps(x))]
    x.zero_() if dtype is not tg.bool else x.fill_(True)
    for c in copies:
        assert c.dtype == dtype and c.shape == x.shape
        np.testing.assert_array_equal(c.numpy(), np.array([1, 0, 3]).astype(dtype.np))
    x_new = tg.zeros(3, dtype=dtype)        # may take a freed slot: the copies keep theirs
    del x_new
    np.testing.assert_array_equal(copies[1].numpy(), np.array([1, 0, 3]).astype(dtype.np))


def test_deepcopy_of_leaves_modules_and_state_dicts():
    import copy
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    c = copy.deepcopy(w)
    assert c.requires_grad and c.is_leaf and c.grad.tolist() == [2.0, 4.0]
    w.grad.zero_()
    assert c.grad.tolist() == [2.0, 4.0]
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(w * 2)
    net = tg.nn.Linear(2, 1)
    net.register_buffer("count", tg.tensor([5.0]))
    best = copy.deepcopy(net.state_dict())
    net2 = copy.deepcopy(net)
    with tg.no_grad():
        net.weight.fill_(0.0)
        net.count.fill_(0.0)
    assert float(best["weight"].abs().sum()) > 0 and best["count"].item() == 5.0
    assert float(net2.weight.abs().sum()) > 0 and net2.count.item() == 5.0
    assert "count" in dict(net2.named_buffers())
    pair = [w, w]
    a, b = copy.deepcopy(pair)
    assert a is b                                   # the memo keeps shared objects shared


def test_pickle_refuses_a_non_leaf_that_requires_grad():
    import pickle
    w = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf tensor which requires_grad"):
        pickle.dumps(w * 2)
    p = pickle.loads(pickle.dumps(w))
    assert p.requires_grad and p.is_leaf and p.tolist() == [1.0]


def test_basic_view_fast_path_equals_numpy():
    """Ints and forward slices are resolved without NumPy: same shape, strides, offset and
    IndexError text as NumPy's on random shapes and indices (in and out of bounds)."""
    from tapegrad.tensor import _basic_view, _numpy_view
    rng = np.random.default_rng(0)
    for _ in range(3000):
        shape = tuple(int(v) for v in rng.integers(1, 6, rng.integers(1, 5)))
        idx = []
        for d in range(int(rng.integers(1, len(shape) + 1))):
            if rng.random() < 0.4:
                idx.append(int(rng.integers(-shape[d] - 1, shape[d] + 1)))
            else:
                ends = [None] + list(range(-6, 7))
                idx.append(slice(ends[rng.integers(len(ends))], ends[rng.integers(len(ends))],
                                 [None, 1, 2, 3][rng.integers(4)]))
        idx = tuple(idx)
        out = []
        for view in (_numpy_view, _basic_view):
            try:
                out.append(view(shape, idx))
            except IndexError as e:
                out.append(str(e))
        assert out[0] == out[1], (shape, idx)


def test_set_num_threads_like_torch():
    before = tg.get_num_threads()
    assert before >= 1
    try:
        tg.set_num_threads(3)
        assert tg.get_num_threads() == 3
        for bad, msg in ((0, "positive integer"), (-2, "positive integer"),
                         (1.5, "an int, but got float"), (True, "an int, but got bool")):
            with pytest.raises(RuntimeError, match=msg):
                tg.set_num_threads(bad)
        assert tg.get_num_threads() == 3
        tg.set_num_threads(np.int64(2))             # as torch: any integer type
        assert tg.get_num_threads() == 2
        with pytest.raises(ValueError, match="Overflow"):
            tg.set_num_threads(2 ** 40)
        assert tg.get_num_threads() == 2
    finally:
        tg.set_num_threads(before)


@pytest.mark.parametrize("value", [np.float64(1.5), np.float32(1.5), np.int32(3), np.int64(3),
                                   np.uint8(3), np.bool_(True)])
def test_tensor_of_numpy_scalar_keeps_its_dtype(value):
    t = tg.tensor(value)
    assert np.dtype(t.numpy().dtype) == np.asarray(value).dtype
    assert t.item() == value.item()
    torch = pytest.importorskip("torch")
    assert str(t.dtype) == str(torch.tensor(value).dtype)
