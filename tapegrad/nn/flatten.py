"""Flatten and Unflatten."""
import math

from ..dtypes import Size
from .module import Module


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one: (N, 2, 3) -> (N, 6) by default."""
    __constants__ = ["start_dim", "end_dim"]

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim into unflattened_size: Unflatten(1, (2, 3)) maps (N, 6) to (N, 2, 3)."""
    __constants__ = ["dim", "unflattened_size"]

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list, Size)):
            raise TypeError("unflattened_size must be a tuple of ints, but found type "
                            f"{type(unflattened_size).__name__}")
        for i, elem in enumerate(unflattened_size):
            if not isinstance(elem, int):
                raise TypeError(f"unflattened_size must be tuple of ints, but found element "
                                f"of type {type(elem).__name__} at pos {i}")
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input):
        return unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def unflatten(input, dim, sizes):
    """input.unflatten(dim, sizes) as a reshape (one size may be -1)."""
    shape = list(input.shape)
    nd = len(shape)
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, "
                         f"{nd - 1}], but got {dim}) in unflatten")
    dim %= nd
    new = list(sizes)
    if new.count(-1) > 1:
        raise RuntimeError(f"unflatten: only one dimension can be inferred, got sizes {new}")
    known = math.prod(s for s in new if s != -1)
    if -1 in new and known and shape[dim] % known == 0:
        new[new.index(-1)] = shape[dim] // known
    if math.prod(new) != shape[dim] or -1 in new:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({shape[dim]}) in the input tensor")
    return input.reshape(shape[:dim] + new + shape[dim + 1:])
