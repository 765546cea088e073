"""torch.autograd.Function: Python forward/backward recorded as one host record, eagerly, under
compile (replayed and specialized), against finite differences and torch."""
import numpy as np
import pytest

import tapegrad as tg
from tests.oracles import finite_difference_grads


def _functions(torch):
    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 3 * g * x * x

    class Affine(torch.autograd.Function):
        """a * w + b, two outputs (also a - w), a non-tensor argument."""
        @staticmethod
        def forward(ctx, a, w, scale):
            ctx.save_for_backward(a, w)
            ctx.scale = scale
            return a * w * scale, a - w

        @staticmethod
        def backward(ctx, g1, g2):
            a, w = ctx.saved_tensors
            return g1 * w * ctx.scale + g2, (g1 * a * ctx.scale - g2).sum(0), None

    class Tanh(torch.autograd.Function):
        """The setup_context style."""
        @staticmethod
        def forward(x):
            return x.tanh()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * (1 - y * y)

    return Cube, Affine, Tanh


def _graph(torch, x, w):
    Cube, Affine, Tanh = _functions(torch)
    u, v = Affine.apply(Cube.apply(x), w, 0.5)
    return (Tanh.apply(u) * v).sum() + (Cube.apply(v) * 0.1).sum()


def _graph_np(x, w):
    u, v = x ** 3 * w * 0.5, x ** 3 - w
    return np.sum(np.tanh(u) * v) + np.sum(v ** 3 * 0.1)


def _inputs(rng):
    return rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (3,))


def test_gradients_match_finite_differences():
    x0, w0 = _inputs(np.random.default_rng(0))
    x = tg.tensor(x0, requires_grad=True)
    w = tg.tensor(w0, requires_grad=True)
    _graph(tg, x, w).backward()
    want = finite_difference_grads(_graph_np, [x0, w0], 1.0)
    np.testing.assert_allclose(x.grad.numpy(), want[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w.grad.numpy(), want[1], rtol=1e-5, atol=1e-7)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x0, w0 = _inputs(np.random.default_rng(1))
    xs = [tg.tensor(x0, requires_grad=True), tg.tensor(w0, requires_grad=True)]
    ts = [torch.tensor(x0, requires_grad=True), torch.tensor(w0, requires_grad=True)]
    a, b = _graph(tg, *xs), _graph(torch, *ts)
    a.backward()
    b.backward()
    assert abs(a.item() - b.item()) < 1e-12
    for p, q in zip(xs, ts):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)
    Cube = _functions(tg)[0]
    assert Cube.apply(xs[0]).grad_fn.name() == _functions(torch)[0].apply(ts[0]).grad_fn.name()


def _step(model, opt, X, Y, Tanh):
    opt.zero_grad()
    loss = ((model[1](Tanh.apply(model[0](X))) - Y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss


def _model():
    tg.manual_seed(3)
    m = tg.nn.Sequential(tg.nn.Linear(3, 6), tg.nn.Linear(6, 1))
    return m, tg.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)


@pytest.mark.parametrize("specialize_after", ["auto", 0])
def test_compiled_training_equals_eager(specialize_after):
    Tanh = _functions(tg)[2]
    rng = np.random.default_rng(2)
    X = tg.tensor(rng.normal(size=(32, 3)), dtype=tg.float32)
    Y = tg.tensor(rng.normal(size=(32, 1)), dtype=tg.float32)
    m1, o1 = _model()
    eager = [_step(m1, o1, X, Y, Tanh).item() for _ in range(12)]
    m2, o2 = _model()
    f = tg.compile(lambda: _step(m2, o2, X, Y, Tanh), specialize_after=specialize_after)
    compiled = [f().item() for _ in range(4)] + list(f.run(8))
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    assert "recorded path" in f.explain()
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-6)


def test_needs_input_grad_and_non_differentiable_outputs():
    seen = {}

    class Split(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            seen["needs"] = ctx.needs_input_grad
            idx = x.argmax()
            mx = x.max() * 1.0
            ctx.mark_non_differentiable(mx)
            return x * y, mx, idx

        @staticmethod
        def backward(ctx, g, g_mx, g_idx):
            return g * 2, None

    x = tg.tensor([1.0, 3.0, 2.0], requires_grad=True)
    y = tg.tensor([1.0, 1.0, 1.0])
    out, mx, idx = Split.apply(x, y)
    assert seen["needs"] == (True, False)
    assert out.requires_grad and not mx.requires_grad and not idx.requires_grad
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_returning_an_input_gives_a_new_node():
    class Ident(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 3

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = Ident.apply(x)
    assert y is not x and y.grad_fn is not None and x.grad_fn is None
    (y * x).sum().backward()                # d/dx = 3 x + y
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_errors_as_torch():
    class Wrong(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="returned an incorrect number of gradients"):
        Wrong.apply(x, 2.0).sum().backward()

    class BadShape(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.reshape(2, 1).expand(2, 3)

    with pytest.raises(RuntimeError, match="returned an invalid gradient at index 0"):
        BadShape.apply(x).sum().backward()
    assert x.grad is None
    with pytest.raises(TypeError, match="save_for_backward can only save variables"):
        class Saves(tg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x, 3)
                return x
        Saves.apply(x)
    # after a failed backward the tape still works
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_backward_twice_and_modified_saved_tensor():
    Cube = _functions(tg)[0]
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x * 1.0)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 24.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
    h = x * 1.0
    z = Cube.apply(h)
    with tg.no_grad():
        h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_broadcast_gradient_is_summed_and_grad_is_collected_by_autograd_grad():
    class Scale(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x, s):
            ctx.save_for_backward(x, s)
            return x * s

        @staticmethod
        def backward(ctx, g):
            x, s = ctx.saved_tensors
            return g * s, g * x             # the second is (3, 2): summed to s's (1, 2)

    x = tg.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    s = tg.tensor([[2.0, -1.0]], requires_grad=True)
    gx, gs = tg.autograd.grad(Scale.apply(x, s).sum(), [x, s])
    np.testing.assert_array_equal(gs.numpy(), x.detach().numpy().sum(0, keepdims=True))
    np.testing.assert_array_equal(gx.numpy(), np.broadcast_to(s.detach().numpy(), (3, 2)))
    assert x.grad is None and s.grad is None
