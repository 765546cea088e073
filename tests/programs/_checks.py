"""Checks appended to the copied programs (not part of the originals).

Each check states what any correct run satisfies whatever its random numbers, and prints the
checked quantities on one line, ``CHECK {json}``, which tests/test_programs.py compares between a
run under tapegrad and a run of the same program under PyTorch.
"""
import json

import numpy as np


def report(**quantities):
    print("CHECK " + json.dumps(quantities))


def values(t):
    """A tensor's values as a float64 NumPy array (PyTorch or tapegrad)."""
    return np.asarray(t.detach().tolist(), np.float64)


def sin_fit_optimum(x):
    """The least-squares cubic a + b x + c x^2 + d x^3 of sin on the grid x, and its loss."""
    X = np.vander(x, 4, increasing=True)
    coef = np.linalg.lstsq(X, np.sin(x), rcond=None)[0]
    return X, coef, float(((X @ coef - np.sin(x)) ** 2).sum())


def check_sin_fit(x, coeffs, last_loss, sgd_lr=None, steps=2000, loss_bound=40.0):
    """A cubic fitted to sin(x) on [-pi, pi] by minimising the summed squared error.

    - the loss of the final coefficients is at least the least-squares optimum and below
      `loss_bound` (reached from any start that randn or nn.Linear's init gives);
    - with plain gradient descent at a stable `sgd_lr`, the loss only decreases: at most the
      last printed one; the error along each eigenvector of the Hessian shrinks by
      (1 - lr h)^steps: along the stiff ones (factor < 1e-8) it must be gone.
    """
    x = values(x)
    coef = np.array([values(c).item() for c in coeffs])
    last_loss = values(last_loss).item() if hasattr(last_loss, "detach") else last_loss
    X, opt, opt_loss = sin_fit_optimum(x)
    loss = float(((X @ coef - np.sin(x)) ** 2).sum())
    assert opt_loss * (1 - 1e-4) <= loss < loss_bound, (opt_loss, loss)
    stiff = []
    if sgd_lr is not None:
        assert loss <= last_loss * (1 + 1e-4), (loss, last_loss)
        h, v = np.linalg.eigh(2 * X.T @ X)
        for k in np.nonzero(np.abs(1 - sgd_lr * h) ** steps < 1e-8)[0]:
            stiff.append(float(v[:, k] @ (coef - opt)))
        assert len(stiff) == 2 and max(abs(s) for s in stiff) < 1e-4, stiff
    report(loss=loss, last_printed_loss=last_loss, coef=coef.tolist(),
           stiff_error=stiff)
