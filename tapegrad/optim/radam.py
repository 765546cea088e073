"""RAdam (rectified Adam), with decoupled_weight_decay and maximize."""
from ..factory import zeros_like
from ..tensor import tensor
from .nadam import _check_betas
from .optimizer import (Optimizer, _as_double, _check_implementation, _scalar_dtype)


class RAdam(Optimizer):
    """RAdam: Adam whose adaptive step is rectified by the variance of the approximated SMA
    length rho_t, and left out (an SGD-with-momentum step) while rho_t <= 5, as
    torch.optim.RAdam.

    Which branch a step takes is a tensor op (a 0/1 mask from the sign of rho_t - 5), not a
    Python test of the step count, so a step recorded by tapegrad.compile replays for every
    later step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check_betas(lr, eps, betas, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)
        _check_implementation("RAdam", foreach, None, differentiable)

    _OPTIONS = (("foreach", None), ("maximize", False), ("differentiable", False),
                ("decoupled_weight_decay", False), ("capturable", False))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["exp_avg"] = zeros_like(p)
        st["exp_avg_sq"] = zeros_like(p)

    def _update(self, p, grad, lr, g):
        _radam(p, grad, self._state(p, g), lr, g)


def _radam(p, grad, st, lr, g):
    """torch.optim.radam._single_tensor_radam for one parameter, op for op. PyTorch's
    `if rho_t > 5` becomes a mask m (1 or 0): the update is rectified * m + plain * (1 - m),
    exactly one of the two; rho_t is clamped to >= 5 and the denominator raised by 1 - m in
    the rectified term, so the branch not taken stays finite (as PyTorch, which does not
    compute it). When rho_inf <= 5 (beta2 <= 2/3), rho_t never exceeds 5."""
    beta1, beta2 = g["betas"]
    exp_avg, exp_avg_sq, step_t = st["exp_avg"], st["exp_avg_sq"], st["step"]
    if g["maximize"]:
        grad = -grad
    step_t.add_(1)
    step = _as_double(step_t)
    wd = g["weight_decay"]
    if wd != 0:
        if g["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)
        else:
            grad = grad.add(p, alpha=wd)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    plain = exp_avg / bias_correction1 * lr          # bias_corrected_exp_avg * lr
    rho_inf = 2 / (1 - beta2) - 1
    if rho_inf <= 5.0:
        p.add_(plain, alpha=-1.0)
        return
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    m = (rho_t - 5.0).sign().clamp(min=0.0)          # 1 where rho_t > 5, else 0
    rho = rho_t.clamp(min=5.0)                       # rho_t itself where m is 1
    rect = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5
    denom = exp_avg_sq.sqrt().add_(g["eps"]).add_(1 - m)
    adaptive_lr = denom.reciprocal() * bias_correction2 ** 0.5   # PyTorch's float / tensor
    p.add_(plain * adaptive_lr * rect * m + plain * (1 - m), alpha=-1.0)
