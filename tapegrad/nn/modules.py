"""The layers, gathered under one name (``tapegrad.nn.modules.Linear``, as torch.nn.modules)."""
from .activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax,
                         Softplus, Tanh)
from .batchnorm import BatchNorm1d
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .dropout import Dropout
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import (BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, HuberLoss, L1Loss,
                   MSELoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss)
from .module import Module
from .normalization import LayerNorm
from .parameter import Buffer, Parameter
from .sparse import Embedding

__all__ = ["Module", "Parameter", "Buffer", "Identity", "Linear", "Flatten", "Unflatten",
           "Sequential", "ModuleList", "ParameterList", "ReLU", "LeakyReLU", "ELU", "Sigmoid",
           "Tanh", "Softplus", "SiLU", "GELU", "Softmax", "LogSoftmax", "MSELoss", "L1Loss",
           "SmoothL1Loss", "HuberLoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss",
           "PoissonNLLLoss", "GaussianNLLLoss", "Dropout", "LayerNorm", "BatchNorm1d",
           "Embedding", "ModuleDict", "ParameterDict"]
