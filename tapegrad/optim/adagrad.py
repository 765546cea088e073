"""Adagrad, with lr_decay, initial_accumulator_value and maximize."""
from ..dtypes import no_grad
from ..factory import full_like
from ..tensor import Tensor, tensor
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
        for g in self.param_groups:
            for p in g["params"]:
                self._init_state(p, initial_accumulator_value)

    def _init_state(self, p, initial_accumulator_value):
        st = self.state[p]
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["sum"] = full_like(p, initial_accumulator_value)

    def __setstate__(self, state):
        super().__setstate__(state)
        for g in self.param_groups:
            for k, v in (("foreach", None), ("maximize", False), ("differentiable", False),
                         ("fused", None)):
                g.setdefault(k, v)
        for st in self.state.values():
            if st and not isinstance(st["step"], Tensor):
                st["step"] = tensor(float(st["step"]), dtype=_scalar_dtype())

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a .grad; returns closure() if given."""
        loss = self._begin(closure)
        for i, g in enumerate(self.param_groups):
            lr = self._lr(i)
            for p in g["params"]:
                if p.grad is None:
                    continue
                if not self.state[p]:
                    self._init_state(p, self.defaults["initial_accumulator_value"])
                _adagrad(p, p.grad, self.state[p], lr, g)
        return loss


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
