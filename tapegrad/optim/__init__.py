"""tapegrad.optim: optimizers with PyTorch's names and update rules."""
from .optimizer import SGD, Optimizer
