"""Adadelta, with weight_decay and maximize."""
from ..factory import zeros_like
from ..tensor import tensor
from .optimizer import (Optimizer, _check_implementation, _check_lr, _scalar_dtype)


class Adadelta(Optimizer):
    """Adadelta: v = rho v + (1 - rho) g^2, delta = sqrt(u + eps) / sqrt(v + eps) g,
    u = rho u + (1 - rho) delta^2; p -= lr delta, as torch.optim.Adadelta."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)
        _check_implementation("Adadelta", foreach, None, differentiable)

    _OPTIONS = (("foreach", None), ("maximize", False), ("differentiable", False),
                ("capturable", False))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["square_avg"] = zeros_like(p)
        st["acc_delta"] = zeros_like(p)

    def _update(self, p, grad, lr, g):
        _adadelta(p, grad, self._state(p, g), lr, g)


def _adadelta(p, grad, st, lr, g):
    """torch.optim.adadelta._single_tensor_adadelta for one parameter, op for op."""
    rho, eps = g["rho"], g["eps"]
    square_avg, acc_delta = st["square_avg"], st["acc_delta"]
    st["step"].add_(1)
    if g["maximize"]:
        grad = -grad
    if g["weight_decay"] != 0:
        grad = grad.add(p, alpha=g["weight_decay"])
    square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    std = square_avg.add(eps).sqrt_()
    delta = acc_delta.add(eps).sqrt_()
    delta.div_(std).mul_(grad)
    acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    p.add_(delta, alpha=-lr)
