"""RMSprop, with momentum, centered and maximize."""
from ..factory import zeros_like
from ..tensor import tensor
from .optimizer import (Optimizer, _check_implementation, _check_lr, _scalar_dtype)


class RMSprop(Optimizer):
    """RMSprop: v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps) (centered: v minus
    the squared mean gradient; momentum: through a buffer), as torch.optim.RMSprop."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        _check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)
        _check_implementation("RMSprop", foreach, None, differentiable)

    _OPTIONS = (("momentum", 0), ("centered", False), ("foreach", None), ("maximize", False),
                ("differentiable", False), ("capturable", False))

    def _init_state(self, p, st, g):
        st["step"] = tensor(0.0, dtype=_scalar_dtype())
        st["square_avg"] = zeros_like(p)
        if g["momentum"] > 0:
            st["momentum_buffer"] = zeros_like(p)
        if g["centered"]:
            st["grad_avg"] = zeros_like(p)

    def _update(self, p, grad, lr, g):
        _rmsprop(p, grad, self._state(p, g), lr, g)


def _rmsprop(p, grad, st, lr, g):
    """torch.optim.rmsprop._single_tensor_rmsprop for one parameter, op for op."""
    alpha, square_avg = g["alpha"], st["square_avg"]
    if g["maximize"]:
        grad = -grad
    st["step"].add_(1)
    if g["weight_decay"] != 0:
        grad = grad.add(p, alpha=g["weight_decay"])
    square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    if g["centered"]:
        grad_avg = st["grad_avg"]
        grad_avg.lerp_(grad, 1 - alpha)
        avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt()
    else:
        avg = square_avg.sqrt()
    avg = avg.add_(g["eps"])
    if g["momentum"] > 0:
        buf = st["momentum_buffer"]
        buf.mul_(g["momentum"]).addcdiv_(grad, avg)
        p.add_(buf, alpha=-lr)
    else:
        p.addcdiv_(grad, avg, value=-lr)
