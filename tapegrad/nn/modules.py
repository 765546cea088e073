"""The layers, gathered under one name (``tapegrad.nn.modules.Linear``, as torch.nn.modules)."""
from .activation import ELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .container import ModuleList, ParameterList, Sequential
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import HuberLoss, L1Loss, MSELoss, SmoothL1Loss
from .module import Module
from .parameter import Buffer, Parameter

__all__ = ["Module", "Parameter", "Buffer", "Identity", "Linear", "Flatten", "Unflatten",
           "Sequential", "ModuleList", "ParameterList", "ReLU", "LeakyReLU", "ELU", "Sigmoid",
           "Tanh", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss"]
