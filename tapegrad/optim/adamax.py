"""Adamax (Adam with the infinity norm), with maximize."""
from ..factory import zeros_like
from ..tensor import tensor
from .nadam import _check_betas
from .optimizer import (Optimizer, _as_double, _check_implementation, _scalar_dtype)


class Adamax(Optimizer):
    """Adamax: m = beta1 m + (1 - beta1) g, u = max(beta2 u, |g| + eps); p -= lr / (1 -
    beta1^t) m / u, as torch.optim.Adamax."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        _check_betas(lr, eps, betas, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)
        _check_implementation("Adamax", foreach, None, differentiable)

    _OPTIONS = (("foreach", None), ("maximize", False), ("differentiable", False),
                ("capturable", False))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["exp_avg"] = zeros_like(p)
        st["exp_inf"] = zeros_like(p)

    def _update(self, p, grad, lr, g):
        _adamax(p, grad, self._state(p, g), lr, g)


def _adamax(p, grad, st, lr, g):
    """torch.optim.adamax._single_tensor_adamax for one parameter, op for op; the bias
    correction is a float64 tensor op on the step count where PyTorch reads it into Python."""
    beta1, beta2 = g["betas"]
    exp_avg, exp_inf, step_t = st["exp_avg"], st["exp_inf"], st["step"]
    if g["maximize"]:
        grad = -grad
    step_t.add_(1)
    if g["weight_decay"] != 0:
        grad = grad.add(p, alpha=g["weight_decay"])
    exp_avg.lerp_(grad, 1 - beta1)
    exp_inf.copy_(exp_inf.mul_(beta2).maximum(grad.abs().add_(g["eps"])))
    bias_correction = 1 - beta1 ** _as_double(step_t)
    p.addcdiv_(exp_avg, exp_inf, value=-lr / bias_correction)     # -(lr / bc), exactly
