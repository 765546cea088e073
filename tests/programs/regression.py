# Source: pytorch/examples, regression/main.py (polynomial regression with F.smooth_l1_loss),
# BSD 3-Clause License, Copyright (c) 2017, PyTorch contributors.
# The update is `param.data.add_(-0.1 * param.grad)` as in the repository's versions that step
# through .data (one later snapshot writes `param.add_(...)` outside no_grad, which PyTorch
# refuses for a leaf that requires grad); otherwise copied unchanged; the block at the end is
# added.
#!/usr/bin/env python
# ruff: noqa: E402, E501, E741, W291, W605   (the copied code is kept as it is)
from __future__ import print_function
from itertools import count

import torch
import torch.nn.functional as F

POLY_DEGREE = 4
W_target = torch.randn(POLY_DEGREE, 1) * 5
b_target = torch.randn(1) * 5


def make_features(x):
    """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE+1)], 1)


def f(x):
    """Approximated function."""
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    """Creates a string description of a polynomial."""
    result = 'y = '
    for i, w in enumerate(W):
        result += '{:+.2f} x^{} '.format(w, i + 1)
    result += '{:+.2f}'.format(b[0])
    return result


def get_batch(batch_size=32):
    """Builds a batch i.e. (x, f(x)) pair."""
    random = torch.randn(batch_size)
    x = make_features(random)
    y = f(x)
    return x, y


# Define model
fc = torch.nn.Linear(W_target.size(0), 1)

for batch_idx in count(1):
    # Get data
    batch_x, batch_y = get_batch()

    # Reset gradients
    fc.zero_grad()

    # Forward pass
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()

    # Backward pass
    output.backward()

    # Apply gradients
    for param in fc.parameters():
        param.data.add_(-0.1 * param.grad)

    # Stop criterion
    if loss < 1e-3:
        break

print('Loss: {:.6f} after {} batches'.format(loss, batch_idx))
print('==> Learned function:\t' + poly_desc(fc.weight.view(-1), fc.bias))
print('==> Actual function:\t' + poly_desc(W_target.view(-1), b_target))

# ---- added for tapegrad's tests (not in the original) ----
import os, sys  # noqa: E401, E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # wherever it is run from
import numpy as np  # noqa: E402
from _checks import report, values  # noqa: E402
# a smooth L1 loss below 1e-3 on 32 samples: the learned polynomial is close to the target one
assert loss < 1e-3
learned = np.append(values(fc.weight).reshape(-1), values(fc.bias))
actual = np.append(values(W_target).reshape(-1), values(b_target))
X = np.vander(np.linspace(-1, 1, 101), POLY_DEGREE + 1, increasing=True)   # [1, x, .., x^4]
gap = np.abs(X @ (np.roll(learned, 1) - np.roll(actual, 1))).max()
assert gap < 0.2, (learned, actual)
assert poly_desc(fc.weight.view(-1), fc.bias) == 'y = ' + ''.join(
    '{:+.2f} x^{} '.format(v, i + 1) for i, v in enumerate(learned[:4].tolist())) + \
    '{:+.2f}'.format(learned[4])
report(final_loss=loss, gap_on_unit_interval=float(gap))
