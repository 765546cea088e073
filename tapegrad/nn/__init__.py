"""tapegrad.nn: Module, Parameter, layers and losses with PyTorch's names."""
from . import functional, init, parameter
from .modules import (ELU, GELU, BCEWithLogitsLoss, Buffer, CrossEntropyLoss, Flatten,
                      GaussianNLLLoss, HuberLoss, Identity, L1Loss, LeakyReLU, Linear, LogSoftmax,
                      Module, ModuleList, MSELoss, NLLLoss, Parameter, ParameterList,
                      PoissonNLLLoss, ReLU, Sequential, Sigmoid, SiLU, SmoothL1Loss, Softmax,
                      Softplus, Tanh, Unflatten)

__all__ = ["functional", "init", "parameter", "Module", "Parameter", "Buffer", "Identity",
           "Linear", "Flatten", "Unflatten", "Sequential", "ModuleList", "ParameterList", "ReLU",
           "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softplus", "SiLU", "GELU", "Softmax",
           "LogSoftmax", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCEWithLogitsLoss",
           "NLLLoss", "CrossEntropyLoss", "PoissonNLLLoss", "GaussianNLLLoss"]
