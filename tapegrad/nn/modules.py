"""The layers, gathered under one name (``tapegrad.nn.modules.Linear``, as torch.nn.modules)."""
from .activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax,
                         Softplus, Tanh)
from .container import ModuleList, ParameterList, Sequential
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import (BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, HuberLoss, L1Loss,
                   MSELoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss)
from .module import Module
from .parameter import Buffer, Parameter

__all__ = ["Module", "Parameter", "Buffer", "Identity", "Linear", "Flatten", "Unflatten",
           "Sequential", "ModuleList", "ParameterList", "ReLU", "LeakyReLU", "ELU", "Sigmoid",
           "Tanh", "Softplus", "SiLU", "GELU", "Softmax", "LogSoftmax", "MSELoss", "L1Loss",
           "SmoothL1Loss", "HuberLoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss",
           "PoissonNLLLoss", "GaussianNLLLoss"]
