"""tapegrad.optim: optimizers and learning-rate schedulers with PyTorch's names and update
rules."""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import SGD, Optimizer
from .rmsprop import RMSprop

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
