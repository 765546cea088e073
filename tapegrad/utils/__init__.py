"""tapegrad.utils: data loading (``tapegrad.utils.data``) with PyTorch's names."""
from . import data

__all__ = ["data"]
