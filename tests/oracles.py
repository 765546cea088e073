"""Shared oracles: central finite differences, NumPy references and (optionally) torch."""
import numpy as np

import tapegrad as tg

EPS = 1e-6
ATOL = 1e-6
RTOL = 1e-5

# How each op of the table is reached from the public API, with its NumPy reference.
# Inputs are float64 arrays; `grad_args` says which positional inputs get gradients.
SHAPE_OPS = {
    "strided": (lambda x: x.t()[1:, ::2], lambda x: x.T[1:, ::2], [(3, 4)]),
    "setstrided": (lambda x, y: _setslice(x, y), lambda x, y: _setslice_np(x, y),
                   [(3, 4), (4,)]),
    "index": (lambda x: x[tg.tensor([2, 0, 2])], lambda x: x[[2, 0, 2]], [(3, 4)]),
    "copy": (lambda x: x.clone(), lambda x: x.copy(), [(3, 2)]),
    "cast": (lambda x: (x.float() * 2).double(), lambda x: x.astype(np.float32) * 2,
             [(3, 2)]),
    "fill": (lambda x: x * x.detach().clone().fill_(2.5), lambda x: x * 2.5, [(3, 2)]),
    "host": (lambda x, y: _XSinY.apply(x, y), lambda x, y: x * np.sin(y), [(3, 2), (2,)]),
    # OP_LINALG (tapegrad.linalg), named after torch.pinverse: its op-table row
    "pinverse": (lambda x: tg.pinverse(x), np.linalg.pinv, [(3, 2)]),
}


class _XSinY(tg.autograd.Function):
    """x * sin(y) with a Python backward (an OP_HOST record), y broadcast."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y.sin()

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y.sin(), (g * x * y.cos()).sum(0)


def _setslice(x, y):
    z = x * 1.0
    z[1] = y * 3
    return z


def _setslice_np(x, y):
    z = x.copy()
    z[1] = y * 3
    return z


def finite_difference_grads(f_np, arrays, weight):
    """d/d arrays of sum(f_np(*arrays) * weight), by central differences."""
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            up = [b.copy() for b in arrays]
            dn = [b.copy() for b in arrays]
            up[k][i] += EPS
            dn[k][i] -= EPS
            g[i] = (np.sum(f_np(*up) * weight) - np.sum(f_np(*dn) * weight)) / (2 * EPS)
        grads.append(g)
    return grads


def tapegrad_grads(f_tg, arrays, weight, dtype=tg.float64):
    xs = [tg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = f_tg(*xs)
    (out * tg.tensor(weight, dtype=dtype)).sum().backward()
    return out, [x.grad for x in xs]


def check_against_torch(f_tg, f_torch, arrays, dtype="float64", rtol=1e-6, atol=1e-6):
    """Same inputs in tapegrad and torch: compare the output and the gradient of out.sum()."""
    import torch
    td = getattr(torch, dtype)
    gd = getattr(tg, dtype)
    xs = [tg.tensor(a, dtype=gd, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=td, requires_grad=True) for a in arrays]
    out, tout = f_tg(*xs), f_torch(*ts)
    assert tuple(out.shape) == tuple(tout.shape)
    assert out.dtype.name == str(tout.dtype).split(".")[1]
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    out.sum().backward()
    tout.sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
