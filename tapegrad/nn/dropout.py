"""Dropout."""
from . import functional as F
from .module import Module


class Dropout(Module):
    """In training, zero each element with probability p and scale the others by 1 / (1 - p);
    in eval mode, the identity. The mask comes from tapegrad's generator (manual_seed); a
    compiled step that draws one runs eagerly at every call, so each call gets a fresh mask
    (see F.dropout)."""
    __constants__ = ["p", "inplace"]

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
