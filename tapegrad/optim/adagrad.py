"""Adagrad, with lr_decay, initial_accumulator_value and maximize."""
from ..factory import full_like
from ..tensor import tensor
from .optimizer import (Optimizer, _as_double, _check_implementation, _check_lr, _scalar_dtype)


class Adagrad(Optimizer):
    """Adagrad: s += g^2; p -= clr g / (sqrt(s) + eps), clr = lr / (1 + (step - 1) lr_decay),
    as torch.optim.Adagrad."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check_lr(lr)
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        _check_implementation("Adagrad", foreach, fused, differentiable)
        for g in self.param_groups:         # as PyTorch: the state exists from the start
            for p in g["params"]:
                self._state(p, g)

    _OPTIONS = (("foreach", None), ("maximize", False), ("differentiable", False),
                ("fused", None))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        # as PyTorch: the constructor's value, whatever a param group says
        st["sum"] = full_like(p, self.defaults["initial_accumulator_value"])

    def _update(self, p, grad, lr, g):
        _adagrad(p, grad, self._state(p, g), lr, g)


def _adagrad(p, grad, st, lr, g):
    """torch.optim.adagrad._single_tensor_adagrad for one parameter, op for op; the decayed
    lr is a float64 tensor op on the step count where PyTorch reads it into Python."""
    step_t, state_sum = st["step"], st["sum"]
    step_t.add_(1)
    if g["maximize"]:
        grad = -grad
    if g["weight_decay"] != 0:
        grad = grad.add(p, alpha=g["weight_decay"])
    if g["lr_decay"] != 0:
        neg_clr = -lr / (1 + (_as_double(step_t) - 1) * g["lr_decay"])   # -(lr / ...), exactly
    else:
        neg_clr = -lr                       # lr / (1 + (step - 1) * 0) is lr
    state_sum.addcmul_(grad, grad, value=1)
    std = state_sum.sqrt().add_(g["eps"])
    p.addcdiv_(grad, std, value=neg_clr)
