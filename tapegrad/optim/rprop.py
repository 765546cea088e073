"""Rprop (resilient backpropagation), with maximize."""
from ..factory import zeros_like
from ..tensor import Tensor, tensor
from .optimizer import (Optimizer, _check_implementation, _check_lr, _scalar_dtype)


class Rprop(Optimizer):
    """Rprop: each element's step size grows by etaplus while its gradient keeps its sign and
    shrinks by etaminus when the sign flips (that step then skips the element), clamped to
    step_sizes; p -= sign(g) step_size, as torch.optim.Rprop. lr is the initial step size.

    PyTorch's masked assignments (sign[sign > 0] = etaplus, ...) are tensor arithmetic on
    the sign (0/1 masks from clamp), so a step recorded by tapegrad.compile replays for
    every later step."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                        maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)
        _check_implementation("Rprop", foreach, None, differentiable)

    _OPTIONS = (("foreach", None), ("maximize", False), ("differentiable", False),
                ("capturable", False))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["prev"] = zeros_like(p)
        lr = g["lr"]                    # the group's lr when the state is made, as PyTorch
        st["step_size"] = zeros_like(p).add_(lr if isinstance(lr, Tensor) else float(lr))

    def _update(self, p, grad, lr, g):
        _rprop(p, grad, self._state(p, g), g)


def _rprop(p, grad, st, g):
    """torch.optim.rprop._single_tensor_rprop for one parameter, op for op, the masked
    assignments as products with 0/1 masks (exact: each factor is etaplus, etaminus or 1)."""
    etaminus, etaplus = g["etas"]
    step_size_min, step_size_max = g["step_sizes"]
    prev, step_size = st["prev"], st["step_size"]
    if g["maximize"]:
        grad = -grad
    st["step"].add_(1)
    sign = grad.mul(prev).sign()
    up = sign.clamp(min=0)                   # 1 where the sign held
    down = up - sign                         # 1 where it flipped
    factor = up * etaplus + down * etaminus + (1 - up - down)
    step_size.mul_(factor).clamp_(step_size_min, step_size_max)
    grad = grad * (1 - down)                 # grad[sign == etaminus] = 0
    p.addcmul_(grad.sign(), step_size, value=-1)
    prev.copy_(grad)
