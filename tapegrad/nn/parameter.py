"""Parameter and Buffer: tensors that a Module registers when they are assigned to it."""
from collections import OrderedDict

from ..factory import empty
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor registered by a Module as a parameter; shares storage with `data`.

        w = nn.Parameter(torch.randn(3, 2))           # requires_grad=True by default
    """

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = empty(0)
        p = data.detach()
        p.__class__ = cls
        return p.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            memo[id(self)] = type(self)(self.data.clone(), self.requires_grad)
        return memo[id(self)]

    def __reduce_ex__(self, proto):
        return _rebuild_parameter, (self.data, self.requires_grad, OrderedDict())


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return Parameter(data, requires_grad)


class _BufferMeta(type):
    def __instancecheck__(cls, instance):
        return isinstance(instance, Tensor) and getattr(instance, "_is_buffer", False)


class Buffer(Tensor, metaclass=_BufferMeta):
    """A tensor that a Module registers as a buffer when assigned (`persistent`: in state_dict)."""

    def __new__(cls, data=None, *, persistent=True):
        if data is None:
            data = empty(0)
        t = data.detach().requires_grad_(data.requires_grad)
        t.persistent = persistent
        t._is_buffer = True
        return t
