# Source: d2l-ai/d2l-en, chapter_preliminaries/autograd.md, the PyTorch code cells as published
# at d2l.ai ("Dive into Deep Learning", section 2.5 Automatic Differentiation), sample code
# under the d2l sample-code license (MIT-0 style, LICENSE-SAMPLECODE of the d2l repositories).
# The notebook cells are copied in order, unchanged (a bare expression is a cell's displayed
# result); the block at the end is added.
# ruff: noqa: E402, E501, E741, W291, W605   (the copied code is kept as it is)
import torch

x = torch.arange(4.0)
x

# Can also create x = torch.arange(4.0, requires_grad=True)
x.requires_grad_(True)
x.grad  # The gradient is None by default

y = 2 * torch.dot(x, x)
y

y.backward()
x.grad

x.grad == 4 * x

x.grad.zero_()  # Reset the gradient
y = x.sum()
y.backward()
x.grad

x.grad.zero_()
y = x * x
y.backward(gradient=torch.ones(len(y)))  # Faster: y.sum().backward()
x.grad

x.grad.zero_()
y = x * x
u = y.detach()
z = u * x

z.sum().backward()
x.grad == u

x.grad.zero_()
y.sum().backward()
x.grad == 2 * x


def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c


a = torch.randn(size=(), requires_grad=True)
d = f(a)
d.backward()

a.grad == d / a

# ---- added for tapegrad's tests (not in the original) ----
import os, sys  # noqa: E401, E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # wherever it is run from
import math  # noqa: E402

from _checks import report  # noqa: E402
shown = []
x = torch.arange(4.0)
shown.append(repr(x))
x.requires_grad_(True)
assert x.grad is None and x.is_leaf and x.dtype == torch.float32
y = 2 * torch.dot(x, x)
shown.append(repr(y))
y.backward()
assert (x.grad == 4 * x).all() and x.grad.tolist() == [0.0, 4.0, 8.0, 12.0]
x.grad.zero_()
y = x.sum()
y.backward()
shown.append(repr(x.grad))
x.grad.zero_()
y = x * x
y.backward(gradient=torch.ones(len(y)))
shown.append(repr(x.grad))
x.grad.zero_()
y = x * x
u = y.detach()
z = u * x
z.sum().backward()
assert (x.grad == u).all() and not u.requires_grad and u.grad_fn is None
shown.append(repr(x.grad == u))
x.grad.zero_()
y.sum().backward()
assert (x.grad == 2 * x).all()
for seed in range(5):
    torch.manual_seed(seed)
    a = torch.randn(size=(), requires_grad=True)
    d = f(a)
    d.backward()
    assert (a.grad == d / a).item() and a.grad.dim() == 0, (a, a.grad, d)
    # f(a) = k a with k = 2^n (a > 0) or 100 * 2^n (a < 0), and |2^n a| >= 1000
    k = a.grad.item() if a.item() > 0 else a.grad.item() / 100
    assert math.log2(k).is_integer() and abs(k * a.item()) >= 1000, (a, a.grad)
report(shown=shown)
