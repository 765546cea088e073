"""tapegrad.nn: Module, Parameter, layers and losses with PyTorch's names."""
from . import functional, init
from .modules import (Flatten, HuberLoss, Identity, L1Loss, Linear, Module, MSELoss, Parameter,
                      ReLU, Sequential, Sigmoid, SmoothL1Loss, Tanh)
