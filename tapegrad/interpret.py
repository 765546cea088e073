"""The forward and reverse interpreters: flat Numba loops over the tape's integer records.

Slots of dtype code 0 (float32) live in ``F32``, code 1 (float64) in ``F64``; ``C32``/``C64`` hold
immediates (a negative slot id ``-k-1`` names immediate ``k``). ``G32``/``G64`` are gradient
arenas with the same offsets as the value arenas; they are all zero between backward calls.
"""
import numpy as np

from .kernels import (binary_loop_bwd, binary_loop_fwd, copy_bwd, copy_fwd, fill_fwd, index_bwd,
                      index_fwd, jit, matmul_bwd, matmul_fwd, reduce_bwd, reduce_fwd, rule,
                      setstrided_bwd, setstrided_fwd, strided_bwd, strided_fwd, unary_loop_bwd,
                      unary_loop_fwd)
from .ops import (DIFF, FREED, GA, GB, LAST_BINARY, LAST_REDUCE, LAST_UNARY, OP_CAST, OP_COPY,
                  OP_FILL, OP_INDEX, OP_MATMUL, OP_SETSTRIDED, OP_STRIDED, SAVE_A, SAVE_B,
                  SAVE_OUT)

OK, GRAPH_FREED, VERSION_CHANGED = 0, 1, 2


@rule
def view(F, C, off, size, s):
    if s >= 0:
        return F[off[s]:off[s] + size[s]]
    return C[-s - 1:-s]


@rule
def _params(C, aux):
    p = 0.0
    q = 0.0
    if aux >= 0:
        p = C[aux]
        q = C[aux + 1]
    return p, q


@jit
def forward_record(op, a, b, out, aux, M, F, C, off, size):
    A = view(F, C, off, size, a)
    O = view(F, C, off, size, out)
    if op <= LAST_UNARY:
        p, q = _params(C, aux)
        unary_loop_fwd(op, A, O, p, q)
    elif op <= LAST_BINARY:
        binary_loop_fwd(op, A, view(F, C, off, size, b), O, M, aux)
    elif op <= LAST_REDUCE:
        reduce_fwd(op, A, O, M, aux)
    elif op == OP_MATMUL:
        matmul_fwd(A, view(F, C, off, size, b), O, M, aux)
    elif op == OP_STRIDED:
        strided_fwd(A, O, M, aux)
    elif op == OP_SETSTRIDED:
        setstrided_fwd(A, O, M, aux)
    elif op == OP_INDEX:
        index_fwd(A, O, M, aux)
    elif op == OP_COPY:
        copy_fwd(A, O)
    elif op == OP_FILL:
        fill_fwd(O, C[aux])


@jit
def reverse_record(op, a, b, out, aux, flags, M, F, C, G, off, size):
    A = view(F, C, off, size, a)
    GA_ = view(G, C, off, size, a)
    O = view(F, C, off, size, out)
    GO = view(G, C, off, size, out)
    ga = (flags & GA) != 0
    if op <= LAST_UNARY:
        p, q = _params(C, aux)
        unary_loop_bwd(op, A, O, GA_, GO, p, q)
    elif op <= LAST_BINARY:
        binary_loop_bwd(op, A, view(F, C, off, size, b), O, GA_, view(G, C, off, size, b), GO,
                        M, aux, ga, (flags & GB) != 0)
    elif op <= LAST_REDUCE:
        reduce_bwd(op, A, O, GA_, GO, M, aux)
    elif op == OP_MATMUL:
        matmul_bwd(A, view(F, C, off, size, b), GA_, view(G, C, off, size, b), GO, M, aux, ga,
                   (flags & GB) != 0)
    elif op == OP_STRIDED:
        strided_bwd(GA_, GO, M, aux)
    elif op == OP_SETSTRIDED:
        setstrided_bwd(GA_, GO, M, aux, ga)
    elif op == OP_INDEX:
        index_bwd(GA_, GO, M, aux)
    elif op == OP_COPY:
        copy_bwd(GA_, GO, ga)
    elif op == OP_FILL:
        GO[:] = 0


@jit
def run_forward(R, lo, hi, M, off, size, dt, F32, C32, F64, C64):
    for i in range(lo, hi):
        op, a, b, out, aux = R[i, 0], R[i, 1], R[i, 2], R[i, 3], R[i, 4]
        if op == OP_CAST:
            if dt[out] == 0:
                copy_fwd(view(F64, C64, off, size, a), view(F32, C32, off, size, out))
            else:
                copy_fwd(view(F32, C32, off, size, a), view(F64, C64, off, size, out))
        elif dt[out] == 0:
            forward_record(op, a, b, out, aux, M, F32, C32, off, size)
        else:
            forward_record(op, a, b, out, aux, M, F64, C64, off, size)


@rule
def _zero(G32, G64, off, size, dt, s):
    if dt[s] == 0:
        G32[off[s]:off[s] + size[s]] = 0
    else:
        G64[off[s]:off[s] + size[s]] = 0


@jit
def _reverse_cast(a, out, flags, off, size, dt, G32, C32, G64, C64):
    if dt[out] == 0:
        copy_bwd(view(G64, C64, off, size, a), view(G32, C32, off, size, out), (flags & GA) != 0)
    else:
        copy_bwd(view(G32, C32, off, size, a), view(G64, C64, off, size, out), (flags & GA) != 0)


@jit
def _accumulate(src, dst, off, size, dt, G32, G64, F32, F64):
    """Add the gradient of slot `src` into the value of slot `dst` (a .grad tensor)."""
    n = size[src]
    if dt[src] == 0:
        F32[off[dst]:off[dst] + n] += G32[off[src]:off[src] + n]
    else:
        F64[off[dst]:off[dst] + n] += G64[off[src]:off[src] + n]


@jit
def run_reverse(R, start, seed, M, off, size, dt, leaf, retain, grad_of, ver,
                F32, C32, G32, F64, C64, G64, needs, retain_graph):
    """Backpropagate the gradient seeded in G[seed] through records start..0.

    Returns (status, record, n_freed, reached): `reached` lists the leaf slots that have no
    .grad tensor yet and whose gradient is left in G for the caller, then -1, then the
    retained (retain_grad) slots that received a gradient.
    """
    marks = np.empty(2 * start + 8, np.int64)
    nm = 0
    needs[seed] = 1
    marks[nm] = seed
    nm += 1
    pending = 0 if leaf[seed] else 1
    n_freed = 0
    status = OK
    bad = -1
    touched = np.empty(2 * start + 8, np.int64)
    nt = 0
    for i in range(start, -1, -1):
        if pending == 0:
            break
        out = R[i, 3]
        if not needs[out]:
            continue
        op, a, b, aux, flags = R[i, 0], R[i, 1], R[i, 2], R[i, 4], R[i, 5]
        if op == OP_SETSTRIDED:                 # GB: the rest of out still needs its gradient
            overwrite = (flags & GB) == 0
        else:
            overwrite = a != out and b != out
        if flags & DIFF:
            if flags & FREED:
                status, bad = GRAPH_FREED, i
                break
            if (((flags & SAVE_A) and ver[a] != R[i, 6]) or ((flags & SAVE_B) and b >= 0
                    and ver[b] != R[i, 7]) or ((flags & SAVE_OUT) and ver[out] != R[i, 7])):
                status, bad = VERSION_CHANGED, i
                break
            if retain[out] and overwrite:
                _accumulate(out, grad_of[out], off, size, dt, G32, G64, F32, F64)
                touched[nt] = out
                nt += 1
            if op == OP_CAST:
                _reverse_cast(a, out, flags, off, size, dt, G32, C32, G64, C64)
            elif dt[out] == 0:
                reverse_record(op, a, b, out, aux, flags, M, F32, C32, G32, off, size)
            else:
                reverse_record(op, a, b, out, aux, flags, M, F64, C64, G64, off, size)
            if op == OP_SETSTRIDED and overwrite:
                _zero(G32, G64, off, size, dt, out)
            if not retain_graph:
                R[i, 5] = flags | FREED
                n_freed += 1
        elif overwrite:
            _zero(G32, G64, off, size, dt, out)     # a constant was written: no gradient flows
        if overwrite:
            needs[out] = 0
            if not leaf[out]:
                pending -= 1
        if flags & DIFF:
            for k in range(1 if op == OP_SETSTRIDED else 2):
                s = a if k == 0 else b
                if s >= 0 and (flags & (GA if k == 0 else GB)) and not needs[s]:
                    needs[s] = 1
                    marks[nm] = s
                    nm += 1
                    if not leaf[s]:
                        pending += 1
    if status == OK and pending > 0:
        status = GRAPH_FREED                    # a needed tensor's record is gone
    reached = np.empty(nm + nt + 1, np.int64)
    nr = 0
    for j in range(nm):
        s = marks[j]
        if not needs[s]:
            continue
        needs[s] = 0
        if status == OK and leaf[s]:
            if grad_of[s] >= 0:
                _accumulate(s, grad_of[s], off, size, dt, G32, G64, F32, F64)
                _zero(G32, G64, off, size, dt, s)
            else:
                reached[nr] = s                 # the caller creates .grad from G[s]
                nr += 1
                continue
        _zero(G32, G64, off, size, dt, s)
    reached[nr] = -1
    nr += 1
    for j in range(nt):
        reached[nr] = touched[j]
        nr += 1
    return status, bad, n_freed, reached[:nr]
