"""NAdam (Nesterov momentum in Adam), with decoupled_weight_decay and maximize."""
from ..factory import zeros_like
from ..tensor import Tensor, tensor
from .optimizer import (Optimizer, _as_double, _check_implementation, _check_lr, _scalar_dtype)


def _check_betas(lr, eps, betas, weight_decay):
    """The checks NAdam, RAdam and Adamax share, in PyTorch's order and words."""
    _check_lr(lr)
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class NAdam(Optimizer):
    """NAdam: Adam whose first moment is used with Nesterov's look-ahead, the momentum
    mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay)) and its running product in
    state['mu_product'], as torch.optim.NAdam.

    The step count and mu_product are tensors and the corrections are tensor ops, so a step
    recorded by tapegrad.compile replays for every later step."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        _check_betas(lr, eps, betas, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)
        _check_implementation("NAdam", foreach, None, differentiable)

    _OPTIONS = (("maximize", False), ("foreach", None), ("capturable", False),
                ("differentiable", False), ("decoupled_weight_decay", False))

    def __setstate__(self, state):
        super().__setstate__(state)
        for st in self.state.values():     # a mu_product saved as a number becomes a tensor
            if "mu_product" in st and not isinstance(st["mu_product"], Tensor):
                st["mu_product"] = tensor(float(st["mu_product"]), dtype=_scalar_dtype())

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["mu_product"] = tensor(1.0, dtype=_scalar_dtype())
        st["exp_avg"] = zeros_like(p)
        st["exp_avg_sq"] = zeros_like(p)

    def _update(self, p, grad, lr, g):
        _nadam(p, grad, self._state(p, g), lr, g)


def _nadam(p, grad, st, lr, g):
    """torch.optim.nadam._single_tensor_nadam for one parameter, op for op; what PyTorch
    computes in Python from the step count and mu_product are float64 tensor ops."""
    beta1, beta2 = g["betas"]
    wd, momentum_decay = g["weight_decay"], g["momentum_decay"]
    exp_avg, exp_avg_sq, mu_product, step_t = (st["exp_avg"], st["exp_avg_sq"],
                                               st["mu_product"], st["step"])
    if g["maximize"]:
        grad = -grad
    step_t.add_(1)
    step = _as_double(step_t)
    bias_correction2 = 1 - beta2 ** step
    if wd != 0:
        if g["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)
        else:
            grad = grad.add(p, alpha=wd)
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product.mul_(mu.to(mu_product.dtype))    # PyTorch: a Python float times the tensor
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = exp_avg_sq.div(bias_correction2).sqrt()
    mu_prod = _as_double(mu_product)            # PyTorch reads it into Python
    mu_product_next = mu_prod * mu_next
    denom.add_(g["eps"])
    p.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - mu_prod))
    p.addcdiv_(exp_avg, denom, value=(-lr * mu_next) / (1.0 - mu_product_next))
