"""tapegrad.nn: Module, Parameter, layers and losses with PyTorch's names."""
from . import functional, init, parameter
from .modules import (ELU, Buffer, Flatten, HuberLoss, Identity, L1Loss, LeakyReLU, Linear,
                      Module, ModuleList, MSELoss, Parameter, ParameterList, ReLU, Sequential,
                      Sigmoid, SmoothL1Loss, Tanh, Unflatten)

__all__ = ["functional", "init", "parameter", "Module", "Parameter", "Buffer", "Identity",
           "Linear", "Flatten", "Unflatten", "Sequential", "ModuleList", "ParameterList", "ReLU",
           "LeakyReLU", "ELU", "Sigmoid", "Tanh", "MSELoss", "L1Loss", "SmoothL1Loss",
           "HuberLoss"]
