"""The tape as data: one record per op, dump(), and every opcode through both interpreters."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.ops import BY_NAME, OPS

OPS_BY_NAME = {name: op.code for name, op in BY_NAME.items()}
from tapegrad.tape import TAPE
from oracles import SHAPE_OPS
from test_ops import _unary as unary_call


def _fresh():
    TAPE.flush()


def test_recording_one_op_adds_one_record():
    x = tg.randn(3, 2, requires_grad=True)
    _fresh()
    n = TAPE.n
    y = x * 2.0
    assert TAPE.n == n + 1
    z = y @ tg.ones(2, 4)
    assert TAPE.n == n + 2
    TAPE._sync()
    assert [int(c) for c in TAPE.R[n:n + 2, 0]] == [OPS_BY_NAME["mul"], OPS_BY_NAME["matmul"]]
    del z


def test_dropped_graphs_are_collected():
    import gc
    gc.collect()
    TAPE.gc()
    x = tg.randn(4, requires_grad=True)
    for _ in range(3):
        y = (x * 2).sum()                         # never backpropagated
    del y
    TAPE.gc()
    assert TAPE.n == 0 and TAPE.n_live == 0


def test_dump_prints_one_line_per_record(capsys):
    x = tg.randn(3, 2, requires_grad=True)
    w = tg.randn(2, 4)
    n = TAPE.n
    y = (x @ w).tanh()
    text = TAPE.dump()
    lines = text.splitlines()[n:]
    assert len(lines) == 2
    assert "matmul" in lines[0] and "(3, 4)" in lines[0] and "float32" in lines[0]
    assert lines[1].split(":")[1].split()[0] == "tanh"
    assert "grad" in lines[1]
    y.sum().backward()


def test_forward_is_deferred_until_a_value_is_read():
    x = tg.tensor([1.0, 2.0])
    y = x * 3.0
    assert TAPE.done < TAPE.n                     # recorded, not yet run
    assert y.tolist() == [3.0, 6.0]


def test_tape_is_reset_after_backward_in_a_training_loop():
    import gc
    gc.collect()
    TAPE.gc()                                     # graphs other tests dropped without backward
    w = tg.randn(3, requires_grad=True)
    for _ in range(5):
        loss = (w * w).sum()
        loss.backward()
        with tg.no_grad():
            w -= 0.1 * w.grad
        w.grad.zero_()
    TAPE.flush()
    assert TAPE.n == 0                            # nothing left to keep


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_every_opcode_is_interpreted(op):
    """Record each op and run both interpreters on it (a table-consistency test)."""
    rng = np.random.default_rng(0)
    if op.kind in ("shape", "source", "host"):
        f, _, shapes = SHAPE_OPS[op.name]
    elif op.kind == "matmul":
        f, shapes = tg.matmul, [(2, 3), (3, 2)]
    elif op.kind == "binary":
        f, shapes = (lambda a, b: getattr(tg, op.name)(a, b)), [(3,), (3,)]
    elif op.kind == "reduce":
        f, shapes = (lambda x: getattr(x, op.name)()), [(3, 2)]
    else:
        f, shapes = unary_call(op), [(3, 2)]     # clamp and softplus take their numbers
    xs = [tg.tensor(rng.uniform(0.5, 1.5, s), dtype=tg.float64, requires_grad=True)
          for s in shapes]
    n0 = TAPE.n
    out = f(*xs)
    codes = TAPE._sync() or TAPE.R[n0:TAPE.n, 0].tolist()
    assert op.code in codes
    out.sum().backward()
    assert all(x.grad is not None for x in xs)


def test_arena_growth_during_backward_keeps_gradients():
    from tapegrad.tape import TAPE
    a = tg.ones(1237, requires_grad=True)           # a size no free slot has
    loss = a.sum() * 2
    TAPE.flush()
    size = len(TAPE.F[0])
    filler = tg.zeros(size - TAPE.top[0])           # the arena is now full
    loss.backward()                                 # a's new .grad needs more room
    assert len(TAPE.F[0]) > size and filler.numel() >= 0
    assert a.grad.tolist() == [2.0] * 1237


NARROW_PROGRAM = """
import numpy as np
import tapegrad as tg
from tapegrad.tape import TAPE
BEFORE
X = tg.tensor([[0.2, 0.5, 0.7], [0.4, 0.6, 0.8], [0.3, 0.6, 0.9]])
Y = tg.tensor([[0.8, 0.8], [0.7, 0.9], [0.9, 0.9]])
W = tg.tensor([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]], requires_grad=True)

def step(X, Y, lr):
    loss = (tg.norm(X @ W - Y) ** 2 + (W.sigmoid() * W.tanh()).mean()).clamp(max=50.0)
    loss.backward()
    W.data = W.data - lr * W.grad
    W.grad.zero_()
    return loss
eager = [step(X, Y, 0.1).item() for _ in range(20)]
f = tg.compile(step)
compiled = [f(X, Y, 0.1).item() for _ in range(5)] + list(f.run(20, X, Y, 0.1))
print(TAPE.wide, np.array(eager + compiled).tobytes().hex(), W.data.numpy().tobytes().hex())
"""


def test_float32_only_work_runs_the_narrow_interpreters_alike():
    """Until a float64 tensor exists, the interpreters run in their float32-only variant: the
    same float32 work gives the same bits as in a process that has a float64 tensor."""
    import subprocess
    import sys
    out = []
    for before in ("", "_wide = tg.zeros(1, dtype=tg.float64)"):
        r = subprocess.run([sys.executable, "-c", NARROW_PROGRAM.replace("BEFORE", before)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        out.append(r.stdout.split())
    assert out[0][0] == "False" and out[1][0] == "True"
    assert out[0][1:] == out[1][1:]
