"""Adam and AdamW (decoupled weight decay), with amsgrad and maximize."""
from ..factory import zeros_like
from ..tensor import Tensor, tensor
from .optimizer import (Optimizer, _as_double, _check_implementation, _check_lr, _scalar_dtype)


class Adam(Optimizer):
    """Adam: moving averages m, v of the gradient and its square; p -= lr m_hat / (sqrt(v_hat)
    + eps) with bias-corrected m_hat, v_hat, as torch.optim.Adam.

    The step count is a tensor (state['step']) and the bias corrections are tensor ops, so a
    step recorded by tapegrad.compile replays for every later step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not all(isinstance(b, float) for b in betas):
            if all(isinstance(b, Tensor) for b in betas):
                raise ValueError(f"{type(self).__name__}: Tensor betas are not supported by "
                                 f"tapegrad; pass Python floats")
            raise ValueError("betas must be either both floats or both Tensors")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        _check_implementation(type(self).__name__, foreach, fused, differentiable)

    _OPTIONS = (("amsgrad", False), ("maximize", False), ("foreach", None), ("capturable", False),
                ("differentiable", False), ("decoupled_weight_decay", False), ("fused", None))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["exp_avg"] = zeros_like(p)
        st["exp_avg_sq"] = zeros_like(p)
        if g["amsgrad"]:
            st["max_exp_avg_sq"] = zeros_like(p)

    def _update(self, p, grad, lr, g):
        _adam(p, grad, self._state(p, g), lr, g)


def _adam(p, grad, st, lr, g):
    """torch.optim.adam._single_tensor_adam for one parameter, op for op; the bias corrections
    are float64 tensor ops on the step count where PyTorch reads it into Python."""
    beta1, beta2 = g["betas"]
    exp_avg, exp_avg_sq, step_t = st["exp_avg"], st["exp_avg_sq"], st["step"]
    if g["maximize"]:
        grad = -grad
    step_t.add_(1)
    wd = g["weight_decay"]
    if wd != 0:
        if g["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)
        else:
            grad = grad.add(p, alpha=wd)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step = _as_double(step_t)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    neg_step_size = -lr / bias_correction1        # -(lr / bc1), exactly
    bias_correction2_sqrt = bias_correction2 ** 0.5
    if g["amsgrad"]:
        st["max_exp_avg_sq"].copy_(st["max_exp_avg_sq"].maximum(exp_avg_sq))
        denom = (st["max_exp_avg_sq"].sqrt() / bias_correction2_sqrt).add_(g["eps"])
    else:
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(g["eps"])
    p.addcdiv_(exp_avg, denom, value=neg_step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay before the update), as
    torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for g in self.param_groups:
            g["decoupled_weight_decay"] = True
