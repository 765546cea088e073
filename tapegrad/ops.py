"""The op table: every opcode the tape can hold, declared once.

A record on the tape is eight integers (see ``tape.py``): opcode, input slots ``a`` and ``b``,
output slot ``out``, ``aux`` (index into the metadata array), flags, and the versions of ``a``
and ``b`` when they were saved. Tests iterate over ``OPS``, so a new op is tested by adding a row.
"""
from typing import Callable, NamedTuple, Optional

import numpy as np

# ---- opcodes (frozen as integer constants inside the njit interpreters) ----
(OP_NEG, OP_ABS, OP_EXP, OP_LOG, OP_SQRT, OP_SIN, OP_COS, OP_TANH, OP_SIGMOID, OP_RELU,
 OP_ROUND, OP_LOG1P, OP_EXPM1, OP_SIGN, OP_FLOOR, OP_CEIL, OP_TRUNC, OP_RECIPROCAL, OP_RSQRT,
 OP_SINH, OP_COSH, OP_ERF, OP_SOFTPLUS, OP_CLAMP,
 OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM,
 OP_SUM, OP_MEAN, OP_NORM, OP_MAX, OP_MIN,
 OP_MATMUL,
 OP_STRIDED, OP_SETSTRIDED, OP_INDEX, OP_COPY, OP_CAST, OP_FILL,
 OP_HOST, OP_LINALG) = range(45)

FIRST_UNARY, LAST_UNARY = OP_NEG, OP_CLAMP
FIRST_BINARY, LAST_BINARY = OP_ADD, OP_MINIMUM
FIRST_REDUCE, LAST_REDUCE = OP_SUM, OP_MIN

# ---- record flags ----
GA = 1        # input a needs a gradient
GB = 2        # input b needs a gradient
DIFF = 4      # the record is differentiable (its output requires grad)
FREED = 8     # the record's graph was freed by a backward without retain_graph
SAVE_A = 16   # backward reads the saved value of a: check its version
SAVE_B = 32   # backward reads the saved value of b: check its version
SAVE_OUT = 64  # backward reads the saved output: check its version

NF = 8        # integers per record
MAXDIM = 8    # broadcasting and strided ops handle up to this many dimensions


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _erf(x):
    import math
    return np.vectorize(math.erf, otypes=[np.asarray(x).dtype])(x)


def _softplus(x, beta, threshold):
    """torch.nn.functional.softplus: log(1 + exp(beta x)) / beta, x where beta x > threshold."""
    bx = beta * np.asarray(x)
    return np.where(bx > threshold, x, (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx))))
                    / beta)


def _round_half_even(x):
    return np.round(x)


def _reduce_ref(fn):
    def ref(x, dim=None, keepdim=False):
        return fn(x, axis=dim, keepdims=keepdim)
    return ref


def _norm_ref(x, dim=None, keepdim=False):
    return np.sqrt(np.sum(x * x, axis=dim, keepdims=keepdim))


class OpDef(NamedTuple):
    code: int
    name: str            # the PyTorch function name
    kind: str            # 'unary' | 'binary' | 'reduce' | 'matmul' | 'shape' | 'source' |
                         # 'host' | 'linalg'
    grad_fn: str         # PyTorch's grad_fn class name for results of this op
    saves: int           # SAVE_* bits: what backward reads
    ref: Optional[Callable] = None   # NumPy reference (tests)
    lims: tuple = (-2.0, 2.0)        # input domain for tests
    params: bool = False             # unary: takes two numbers (immediates), and its backward
                                     # rule is (x, p, q), not (x, out)


OPS = (
    # ---- unary elementwise: out = f(a) ----
    OpDef(OP_NEG, "neg", "unary", "NegBackward0", 0, np.negative),
    OpDef(OP_ABS, "abs", "unary", "AbsBackward0", SAVE_A, np.abs),
    OpDef(OP_EXP, "exp", "unary", "ExpBackward0", SAVE_OUT, np.exp),
    OpDef(OP_LOG, "log", "unary", "LogBackward0", SAVE_A, np.log, (0.1, 4.0)),
    OpDef(OP_SQRT, "sqrt", "unary", "SqrtBackward0", SAVE_OUT, np.sqrt, (0.1, 4.0)),
    OpDef(OP_SIN, "sin", "unary", "SinBackward0", SAVE_A, np.sin),
    OpDef(OP_COS, "cos", "unary", "CosBackward0", SAVE_A, np.cos),
    OpDef(OP_TANH, "tanh", "unary", "TanhBackward0", SAVE_OUT, np.tanh),
    OpDef(OP_SIGMOID, "sigmoid", "unary", "SigmoidBackward0", SAVE_OUT, _sigmoid),
    OpDef(OP_RELU, "relu", "unary", "ReluBackward0", SAVE_OUT, lambda x: np.maximum(x, 0)),
    OpDef(OP_ROUND, "round", "unary", "RoundBackward0", 0, _round_half_even),
    OpDef(OP_LOG1P, "log1p", "unary", "Log1PBackward0", SAVE_A, np.log1p, (-0.9, 2.0)),
    OpDef(OP_EXPM1, "expm1", "unary", "Expm1Backward0", SAVE_OUT, np.expm1),
    OpDef(OP_SIGN, "sign", "unary", "SignBackward0", 0, np.sign),
    OpDef(OP_FLOOR, "floor", "unary", "FloorBackward0", 0, np.floor),
    OpDef(OP_CEIL, "ceil", "unary", "CeilBackward0", 0, np.ceil),
    OpDef(OP_TRUNC, "trunc", "unary", "TruncBackward0", 0, np.trunc),
    OpDef(OP_RECIPROCAL, "reciprocal", "unary", "ReciprocalBackward0", SAVE_OUT,
          np.reciprocal, (0.3, 2.0)),
    OpDef(OP_RSQRT, "rsqrt", "unary", "RsqrtBackward0", SAVE_OUT, lambda x: 1.0 / np.sqrt(x),
          (0.2, 4.0)),
    OpDef(OP_SINH, "sinh", "unary", "SinhBackward0", SAVE_A, np.sinh),
    OpDef(OP_COSH, "cosh", "unary", "CoshBackward0", SAVE_A, np.cosh),
    OpDef(OP_ERF, "erf", "unary", "ErfBackward0", SAVE_A, _erf),
    OpDef(OP_SOFTPLUS, "softplus", "unary", "SoftplusBackward0", SAVE_A,
          lambda x: _softplus(x, 1.5, 2.0), params=True),
    OpDef(OP_CLAMP, "clamp", "unary", "ClampBackward1", SAVE_A,
          lambda x: np.clip(x, -0.5, 0.7), params=True),
    # ---- binary elementwise with broadcasting: out = f(a, b) ----
    OpDef(OP_ADD, "add", "binary", "AddBackward0", 0, np.add),
    OpDef(OP_SUB, "sub", "binary", "SubBackward0", 0, np.subtract),
    OpDef(OP_MUL, "mul", "binary", "MulBackward0", SAVE_A | SAVE_B, np.multiply),
    OpDef(OP_DIV, "div", "binary", "DivBackward0", SAVE_A | SAVE_B, np.divide, (0.5, 2.0)),
    OpDef(OP_POW, "pow", "binary", "PowBackward1", SAVE_A | SAVE_B | SAVE_OUT, np.power,
          (0.5, 2.0)),
    OpDef(OP_MAXIMUM, "maximum", "binary", "MaximumBackward0", SAVE_A | SAVE_B, np.maximum),
    OpDef(OP_MINIMUM, "minimum", "binary", "MinimumBackward0", SAVE_A | SAVE_B, np.minimum),
    # ---- reductions over everything or one dim ----
    OpDef(OP_SUM, "sum", "reduce", "SumBackward0", 0, _reduce_ref(np.sum)),
    OpDef(OP_MEAN, "mean", "reduce", "MeanBackward0", 0, _reduce_ref(np.mean)),
    OpDef(OP_NORM, "norm", "reduce", "NormBackward0", SAVE_A | SAVE_OUT, _norm_ref),
    OpDef(OP_MAX, "max", "reduce", "MaxBackward1", SAVE_A | SAVE_OUT, _reduce_ref(np.max)),
    OpDef(OP_MIN, "min", "reduce", "MinBackward1", SAVE_A | SAVE_OUT, _reduce_ref(np.min)),
    # ---- matmul (all of PyTorch's rank cases, batched with broadcasting) ----
    OpDef(OP_MATMUL, "matmul", "matmul", "MmBackward0", SAVE_A | SAVE_B, np.matmul),
    # ---- data movement ----
    OpDef(OP_STRIDED, "strided", "shape", "AsStridedBackward0", 0),      # gather by strides
    OpDef(OP_SETSTRIDED, "setstrided", "shape", "CopySlices", 0),        # scatter into a region
    OpDef(OP_INDEX, "index", "shape", "IndexBackward0", 0),              # rows by int64 index
    OpDef(OP_COPY, "copy", "shape", "CloneBackward0", 0),
    OpDef(OP_CAST, "cast", "shape", "ToCopyBackward0", 0),
    OpDef(OP_FILL, "fill", "source", "", 0),
    # ---- a node whose backward is Python (autograd.Function): no forward, and the reverse
    # pass stops at it to call that backward. M[aux:] = [node id, n inputs, n outputs,
    # input slots..., output slots...]; a, b are NONE and out is the first output ----
    OpDef(OP_HOST, "host", "host", "", 0),
    # ---- a factorization or solve of a batch of matrices (tapegrad.linalg): M[aux:] = [kind,
    # batch, rows, columns, q, flags, offsets of a's matrices, offsets of b's]; b is a's slot,
    # a second matrix, or immediates. Its output packs the results (and status elements); the
    # record is never differentiable: tapegrad.linalg's autograd.Functions differentiate it
    # with tensor ops. Named after the torch function the op-table tests call on it ----
    OpDef(OP_LINALG, "pinverse", "linalg", "", 0, lambda x: np.linalg.pinv(x)),
)

assert [op.code for op in OPS] == list(range(len(OPS))), "OPS must be ordered by opcode"
BY_NAME = {op.name: op for op in OPS}
SAVES = np.array([op.saves for op in OPS], dtype=np.int64)
