"""tapegrad.nn: Module, Parameter, layers and losses with PyTorch's names."""
from . import functional, init, parameter, utils
from .modules import (ELU, GELU, BatchNorm1d, BCEWithLogitsLoss, Buffer, CrossEntropyLoss,
                      Dropout, Embedding, Flatten, GaussianNLLLoss, HuberLoss, Identity, L1Loss,
                      LayerNorm, LeakyReLU, Linear, LogSoftmax, Module, ModuleDict, ModuleList,
                      MSELoss, NLLLoss, Parameter, ParameterDict, ParameterList, PoissonNLLLoss,
                      ReLU, Sequential, Sigmoid, SiLU, SmoothL1Loss, Softmax, Softplus, Tanh,
                      Unflatten)

__all__ = ["functional", "init", "parameter", "utils", "Module", "Parameter", "Buffer",
           "Identity", "Linear", "Flatten", "Unflatten", "Sequential", "ModuleList", "ModuleDict",
           "ParameterList", "ParameterDict", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh",
           "Softplus", "SiLU", "GELU", "Softmax", "LogSoftmax", "MSELoss", "L1Loss",
           "SmoothL1Loss", "HuberLoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss",
           "PoissonNLLLoss", "GaussianNLLLoss", "Dropout", "LayerNorm", "BatchNorm1d",
           "Embedding"]
