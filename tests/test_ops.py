"""Table-driven tests: every op in the op table, forward and gradient, on several shapes."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.ops import OPS
from oracles import (ATOL, RTOL, SHAPE_OPS, check_against_torch, finite_difference_grads,
                     tapegrad_grads)

SHAPES = [(), (3,), (3, 2), (1, 2)]
BROADCAST = [((), (3,)), ((3, 2), (2,)), ((3, 1), (1, 4)), ((2, 1, 3), (4, 1)),
             ((2, 3, 1, 2), (3, 4, 1))]
REDUCE_ARGS = [dict(), dict(dim=0), dict(dim=-1, keepdim=True)]
MATMUL = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
          ((2, 2, 3), (2, 3, 4)), ((2, 2, 3), (3, 4)), ((3,), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2))]
UNARY_CALL = {"clamp": lambda x: x.clamp(-0.5, 0.7),
              "softplus": lambda x: tg.nn.functional.softplus(x, 1.5, 2.0)}


def _data(rng, shape, lims):
    lo, hi = lims
    return rng.uniform(lo, hi, shape)


def _unary(op):
    return UNARY_CALL.get(op.name, lambda x: getattr(x, op.name)())


def _binary(op):
    return lambda a, b: getattr(tg, op.name)(a, b)


def _reduce(op, kw):
    return lambda x: getattr(x, op.name if op.name not in ("max", "min") or not kw else
                             "a" + op.name)(**kw)


def _cases():
    for op in OPS:
        if op.kind == "unary":
            for s in SHAPES:
                yield op, _unary(op), op.ref, [s]
        elif op.kind == "binary":
            for sa, sb in [(s, s) for s in SHAPES] + BROADCAST:
                yield op, _binary(op), op.ref, [sa, sb]
        elif op.kind == "reduce":
            for s in [(3,), (3, 2), (2, 3, 4)]:
                for kw in REDUCE_ARGS:
                    yield op, _reduce(op, kw), (lambda x, r=op.ref, k=kw: r(x, **k)), [s]
        elif op.kind == "matmul":
            for sa, sb in MATMUL:
                yield op, tg.matmul, np.matmul, [sa, sb]
        else:
            f_tg, f_np, shapes = SHAPE_OPS[op.name]
            yield op, f_tg, f_np, shapes


CASES = list(_cases())
IDS = [f"{op.name}-{'-'.join(str(s) for s in shapes)}-{i}" for i, (op, _, _, shapes)
       in enumerate(CASES)]


def test_every_op_has_cases():
    assert {op.name for op, *_ in CASES} == {op.name for op in OPS}


@pytest.mark.parametrize("op,f_tg,f_np,shapes", CASES, ids=IDS)
def test_forward_matches_numpy(op, f_tg, f_np, shapes):
    rng = np.random.default_rng(0)
    arrays = [_data(rng, s, op.lims) for s in shapes]
    for dtype, tol in ((tg.float64, 1e-12), (tg.float32, 1e-5)):
        out = f_tg(*[tg.tensor(a, dtype=dtype) for a in arrays])
        ref = f_np(*[a.astype(dtype.np) for a in arrays])
        assert tuple(out.shape) == np.shape(ref)
        np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("op,f_tg,f_np,shapes", CASES, ids=IDS)
def test_gradient_matches_finite_differences(op, f_tg, f_np, shapes):
    rng = np.random.default_rng(1)
    arrays = [_data(rng, s, op.lims) for s in shapes]
    weight = rng.normal(size=np.shape(f_np(*arrays)))
    out, grads = tapegrad_grads(f_tg, arrays, weight)
    smooth = {"cast": lambda x: x * 2.0}.get(op.name, f_np)   # no float32 rounding in the FD
    expected = finite_difference_grads(smooth, arrays, weight)
    for g, e in zip(grads, expected):
        assert g is not None and g.shape == e.shape
        np.testing.assert_allclose(g.numpy(), e, rtol=RTOL, atol=ATOL)


TORCH_CALL = {"clamp": lambda x: x.clamp(-0.5, 0.7),
              "softplus": lambda x: __import__("torch").nn.functional.softplus(x, 1.5, 2.0)}


@pytest.mark.parametrize("op,f_tg,f_np,shapes", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch(op, f_tg, f_np, shapes, dtype):
    torch = pytest.importorskip("torch")
    if op.kind in ("shape", "source", "host"):
        f_torch = {"strided": lambda x: x.t()[1:, ::2],
                   "setstrided": _torch_setslice,
                   "index": lambda x: x[torch.tensor([2, 0, 2])],
                   "copy": lambda x: x.clone(),
                   "cast": lambda x: (x.float() * 2).double(),
                   "fill": lambda x: x * x.detach().clone().fill_(2.5),
                   "host": lambda x, y: x * torch.sin(y)}[op.name]
        if dtype == "float32":
            pytest.skip("shape ops are exercised in float64")
    elif op.kind == "unary":
        f_torch = TORCH_CALL.get(op.name, lambda x, n=op.name: getattr(x, n)())
    elif op.kind == "matmul":
        f_torch = torch.matmul
    elif op.kind == "reduce":
        pytest.skip("reductions are compared in test_reductions_match_torch")
    else:
        f_torch = getattr(torch, op.name)
    rng = np.random.default_rng(2)
    arrays = [_data(rng, s, op.lims) for s in shapes]
    tol = 1e-10 if dtype == "float64" else 2e-5
    check_against_torch(f_tg, f_torch, arrays, dtype, rtol=tol, atol=tol)


def _torch_setslice(x, y):
    z = x * 1.0
    z[1] = y * 3
    return z


@pytest.mark.parametrize("name", ["sum", "mean", "norm", "amax", "amin"])
@pytest.mark.parametrize("kw", REDUCE_ARGS)
def test_reductions_match_torch(name, kw):
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 3, 4))
    check_against_torch(lambda x: getattr(x, name)(**kw), lambda x: getattr(x, name)(**kw), [a])


def test_max_min_with_dim_return_values_and_indices():
    x = tg.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    values.sum().backward()
    assert x.grad.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert x.min(0).indices.tolist() == [0, 1, 0]


def test_full_max_spreads_gradient_over_ties():
    x = tg.tensor([3.0, 1.0, 3.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.5, 0.0, 0.5]


# (function, its derivative in NumPy) where the derivative is infinite at zero; the powers'
# derivatives in torch's forms (x ** -0.5 is 1 / sqrt(x): -inf at -0.0, where pow gives inf)
SINGULAR = {"log": (lambda x: x.log(), lambda x: 1 / x),
            "sqrt": (lambda x: x.sqrt(), lambda x: 0.5 / np.sqrt(x)),
            "reciprocal": (lambda x: 1 / x, lambda x: -1 / x ** 2),
            "pow_minus_one": (lambda x: x ** -1.0, lambda x: -1.0 / (x * x)),
            "pow_half": (lambda x: x ** 0.5, lambda x: 0.5 / np.sqrt(x))}


@pytest.mark.parametrize("name", SINGULAR)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("how", ["eager", "replay"])
def test_gradient_at_a_singular_point_is_infinite(name, dtype, how):
    """At x = ±0 the gradient is ±inf, as IEEE division and torch give, not an exception (the
    compiled kernels raised ZeroDivisionError)."""
    f, df = SINGULAR[name]
    x0 = np.array([0.0, -0.0, 2.0], dtype)
    x = tg.tensor(x0, requires_grad=True)

    def step():
        f(x).sum().backward()

    run = step if how == "eager" else tg.compile(step)
    for _ in range(1 if how == "eager" else 3):         # record, replay, replay
        x.grad = None
        run()
    with np.errstate(divide="ignore", invalid="ignore"):
        want = df(x0)
    np.testing.assert_array_equal(np.isinf(x.grad.numpy()), np.isinf(want))
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)
    try:
        import torch
    except ImportError:
        return
    xt = torch.tensor(x0, requires_grad=True)
    f(xt).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6)


def test_division_by_zero_is_ieee():
    a = np.array([1.0, -1.0, 0.0, 1.0, 2.0, np.nan])
    b = np.array([0.0, 0.0, 0.0, -0.0, np.inf, 0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = a / b
    np.testing.assert_array_equal((tg.tensor(a) / tg.tensor(b)).numpy(), want)


@pytest.mark.parametrize("e", [2, 3, 0.5, -0.5, -1, -2, 1, 0, 1.5, -3, -1.5])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pow_at_special_values_matches_torch(e, dtype):
    """torch computes x ** 0.5 as sqrt, x ** -1 as 1 / x, and so on: the same values, down to
    the sign of a zero or an infinity ((-0.0) ** 0.5 = -0.0, (-0.0) ** -1 = -inf)."""
    torch = pytest.importorskip("torch")
    x0 = np.array([0.0, -0.0, 2.0, -2.0, 0.3, -1.5, np.inf, -np.inf, np.nan], dtype)
    x = tg.tensor(x0, requires_grad=True)
    y = x ** e
    y.sum().backward()
    xt = torch.tensor(x0, requires_grad=True)
    yt = xt ** e
    yt.sum().backward()
    got, want = y.detach().numpy(), yt.detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    num = ~np.isnan(want)                       # (the sign of a nan means nothing)
    np.testing.assert_array_equal(np.signbit(got[num]), np.signbit(want[num]))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, equal_nan=True)
