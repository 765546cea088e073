"""The interpreters: flat Numba loops over the tape's integer records.

``run_steps`` runs programs: rows that run records forward, run a record's backward, seed,
zero or accumulate gradients, check guards (tapegrad.compile records them). Eager forward
(``run_forward``) is a program of one row. ``reverse_schedule`` walks a backward pass and gives
its steps as rows; ``run_reverse`` is the walk, then run_steps on its rows. Each compiled
function that Python calls links, optimizes and emits every kernel it reaches once more (about
a second of first compile each), so run_steps is the one that reaches the kernels, and the
kernels' dispatchers (forward_record, reverse_record) are typed into it.

Slots of dtype code 0 (float32) live in ``F32``, code 1 (float64) in ``F64``; ``C32``/``C64`` hold
immediates (a negative slot id ``-k-1`` names immediate ``k``). ``G32``/``G64`` are gradient
arenas with the same offsets as the value arenas; they are all zero between backward calls.
``F64``, ``C64`` and ``G64`` are None until a float64 slot exists: Numba decides each
``F64 is None`` test when it compiles, so float32-only work compiles one call of each kernel
instead of one per dtype, and never the float64 kernels.
"""
import hashlib
import os

import numba
import numpy as np
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .kernels import (ENTRY_OPTIONS, binary_flat_bwd, binary_flat_fwd, binary_loop_bwd,
                      binary_loop_fwd, copy_bwd, copy_fwd, entry, fill_fwd, gather_rows,
                      index_bwd, index_fwd, inline, jit, matmul_bwd, matmul_fwd, reduce_bwd,
                      reduce_fwd, rule, setstrided_bwd, setstrided_fwd, strided_bwd, strided_fwd,
                      unary_loop_bwd, unary_loop_fwd)
from .linalg.kernels import linalg_fwd
from .ops import (DIFF, FREED, GA, GB, LAST_BINARY, LAST_REDUCE, LAST_UNARY, OP_CAST, OP_COPY,
                  OP_FILL, OP_HOST, OP_INDEX, OP_LINALG, OP_MATMUL, OP_SETSTRIDED, OP_STRIDED,
                  SAVE_A, SAVE_B, SAVE_OUT)

OK, GRAPH_FREED, VERSION_CHANGED = 0, 1, 2
FREE, CHECK = 1, 2      # reverse_schedule modes: free the graph (no retain_graph), check versions

# A program (run_steps) is an int64 array of rows [kind, p1, p2, p3, p4, p5]: runs of records
# and the events a recording saw between them (backward seeds, the steps of each backward pass
# as reverse_schedule gives them, new .grad tensors, guards, result copies). P_REV names a
# backward pass in a recording; programs hold its P_BWD / P_ZERO / P_ACC rows instead.
# P_HOST (a record whose backward is Python, OP_HOST) is a row of reverse_schedule only: the
# caller runs the rows before it, calls that backward, and goes on. Its work is then P_TAKE
# rows (the output gradients), records, and P_ADDG rows (G[p1] += F[p2], the input gradients);
# a recording logs the pass as P_ROWS events (the rows of reverse_schedule between hosts).
(P_FWD, P_SEED, P_SEEDSLOT, P_REV, P_TAKE, P_CMP, P_VALUE, P_COPY, P_BWD, P_ZERO, P_ACC,
 P_AFFINE_FWD, P_AFFINE_BWD, P_HOST, P_ADDG, P_ROWS) = range(16)
CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE = range(6)


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


@rule
def _operand(F, C, off, size, s, n):
    """(array, offset, stride) of an elementwise operand: a slot, or an immediate in C."""
    if s >= 0:
        return F, off[s], 1 if size[s] == n else 0
    return C, -s - 1, 0


@inline
def forward_record(op, a, b, out, aux, M, F, C, off, size):
    n = size[out]
    if op == OP_HOST:                   # its outputs were computed by the records before it
        return
    if op <= LAST_UNARY:
        p, q = _params(C, aux)
        unary_loop_fwd(op, F, off[a], off[out], n, p, q)
        return
    if op <= LAST_BINARY and aux < 0:
        XA, oa, sa = _operand(F, C, off, size, a, n)
        XB, ob, sb = _operand(F, C, off, size, b, n)
        binary_flat_fwd(op, XA, oa, sa, XB, ob, sb, F, off[out], n)
        return
    A = view(F, C, off, size, a)
    O = view(F, C, off, size, out)
    if op <= LAST_BINARY:
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
    elif op == OP_LINALG:               # b: a second matrix, or immediates (never its grad)
        if b >= 0:
            linalg_fwd(A, view(F, C, off, size, b), C, -1, O, M, aux)
        else:
            linalg_fwd(A, A, C, -b - 1, O, M, aux)


@inline
def reverse_record(op, a, b, out, aux, flags, M, F, C, G, off, goff, size):
    n = size[out]
    ga = (flags & GA) != 0
    if op <= LAST_UNARY:
        p, q = _params(C, aux)
        unary_loop_bwd(op, F, G, off[a], goff[a], off[out], goff[out], n, p, q)
        return
    if op <= LAST_BINARY and aux < 0:
        XA, oa, sa = _operand(F, C, off, size, a, n)
        XB, ob, sb = _operand(F, C, off, size, b, n)
        binary_flat_bwd(op, XA, oa, sa, XB, ob, sb, F, G, off[out], goff[out],
                        goff[a] if a >= 0 else 0, goff[b] if b >= 0 else 0, n, ga,
                        (flags & GB) != 0)
        return
    A = view(F, C, off, size, a)
    GA_ = view(G, C, goff, size, a)
    O = view(F, C, off, size, out)
    GO = view(G, C, goff, size, out)
    if op <= LAST_BINARY:
        binary_loop_bwd(op, A, view(F, C, off, size, b), O, GA_, view(G, C, goff, size, b), GO,
                        M, aux, ga, (flags & GB) != 0)
    elif op <= LAST_REDUCE:
        reduce_bwd(op, A, O, GA_, GO, M, aux)
    elif op == OP_MATMUL:
        matmul_bwd(A, view(F, C, off, size, b), GA_, view(G, C, goff, size, b), GO, M, aux, ga,
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
        for k in range(GO.size):
            GO[k] = 0


# The helpers below copy with explicit loops: a NumPy slice assignment pulls Numba's shape check
# and its error-message formatting into the first compile (about 2 s).
@rule
def _zero(G32, G64, goff, size, dt, s):
    o = goff[s]
    for k in range(size[s]):
        if G64 is None or dt[s] == 0:
            G32[o + k] = 0
        else:
            G64[o + k] = 0


@jit
def _reverse_cast(a, out, flags, goff, size, dt, G32, C32, G64, C64):
    if dt[out] == 0:
        copy_bwd(view(G64, C64, goff, size, a), view(G32, C32, goff, size, out),
                 (flags & GA) != 0)
    else:
        copy_bwd(view(G32, C32, goff, size, a), view(G64, C64, goff, size, out),
                 (flags & GA) != 0)


@jit
def _accumulate(src, dst, off, goff, size, dt, G32, G64, F32, F64):
    """Add the gradient of slot `src` into the value of slot `dst` (a .grad tensor)."""
    o, og = off[dst], goff[src]
    for k in range(size[src]):
        if G64 is None or dt[src] == 0:
            F32[o + k] += G32[og + k]
        else:
            F64[o + k] += G64[og + k]


@rule
def _seen(a, n, s):
    for k in range(n):
        if a[k] == s:
            return True
    return False


@rule
def _row(rows, nr, kind, p1, p2):
    """Write program row nr; the number of rows after it."""
    rows[nr, 0], rows[nr, 1], rows[nr, 2] = kind, p1, p2
    rows[nr, 3], rows[nr, 4], rows[nr, 5] = 0, 0, 0
    return nr + 1


@entry
def reverse_schedule(R, start, seed, M, vid, leaf, retain, grad_of, ver, needs, mode):
    """The backward pass from record `start`, seeded at slot `seed`, as program rows for
    run_steps: (P_BWD, record), (P_ZERO, slot), (P_ACC, slot, .grad slot). Eager backward runs
    them at once; a recording unrolls them into its program.

    The walk needs only the graph, no values, so it is compiled apart from the kernels (each
    compiled function that calls the kernels emits all of them again). `mode` is FREE | CHECK
    in eager use: mark the records freed (unless retain_graph), check freed flags and version
    counters. `needs` is scratch, all zero before and after.

    Returns (status, failing record, n_freed, rows, reached): `reached` lists the leaf slots
    that have no .grad tensor yet, whose gradient the rows leave in G for the caller, then -1,
    then the retained (retain_grad) slots that receive a gradient.

    An OP_HOST record (M[aux:] = node, n inputs, n outputs, inputs..., outputs...) is one
    (P_HOST, record) row when any of its outputs needs a gradient; all of its inputs need one.
    """
    extra = 0                                   # the inputs and outputs of host records
    for i in range(start + 1):
        if R[i, 0] == OP_HOST:
            extra += M[R[i, 4] + 1] + M[R[i, 4] + 2]
    marks = np.empty(2 * start + 8 + extra, np.int64)
    touched = np.empty(2 * start + 8 + extra, np.int64)
    # at most 3 rows per record, 1 per host output and 2 per mark
    rows = np.empty((7 * start + 16 + 3 * extra, 6), np.int64)
    nm, nt, nr = 0, 0, 0
    needs[seed] = 1
    marks[nm] = seed
    nm += 1
    pending = 0 if leaf[seed] else 1
    n_freed = 0
    status = OK
    bad = -1
    for i in range(start, -1, -1):
        if pending == 0:
            break
        if R[i, 0] == OP_HOST:
            status, bad, nr, nm, nt, pending, n_freed = _host_schedule(
                R, i, M, leaf, retain, grad_of, needs, mode, marks, touched, rows, nr, nm, nt,
                pending, n_freed)
            if status != OK:
                break
            continue
        out = R[i, 3]
        if not needs[out]:
            continue
        op, a, b, flags = R[i, 0], R[i, 1], R[i, 2], R[i, 5]
        if op == OP_SETSTRIDED:                 # GB: the rest of out still needs its gradient
            overwrite = (flags & GB) == 0
        else:
            overwrite = a != out and b != out
        if flags & DIFF:
            if (mode & CHECK) and (flags & FREED):
                status, bad = GRAPH_FREED, i
                break
            if (mode & CHECK) and (((flags & SAVE_A) and ver[vid[a]] != R[i, 6]) or (
                    (flags & SAVE_B) and b >= 0 and ver[vid[b]] != R[i, 7]) or (
                    (flags & SAVE_OUT) and ver[vid[out]] != R[i, 7])):
                status, bad = VERSION_CHANGED, i
                break
            if retain[out] and not _seen(touched, nt, out):
                # the last write of the slot: its gradient is the retained tensor's .grad
                nr = _row(rows, nr, P_ACC, out, grad_of[out])
                touched[nt] = out
                nt += 1
            nr = _row(rows, nr, P_BWD, i, 0)
            if op == OP_SETSTRIDED and overwrite:
                nr = _row(rows, nr, P_ZERO, out, 0)
            if mode & FREE:
                R[i, 5] = flags | FREED
                n_freed += 1
        elif overwrite:
            nr = _row(rows, nr, P_ZERO, out, 0)     # a constant was written: no gradient flows
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
    nreached = 0
    for j in range(nm):
        s = marks[j]
        if not needs[s]:
            continue
        needs[s] = 0
        if leaf[s]:
            if grad_of[s] < 0:
                reached[nreached] = s           # the caller creates .grad from G[s]
                nreached += 1
                continue
            nr = _row(rows, nr, P_ACC, s, grad_of[s])
        nr = _row(rows, nr, P_ZERO, s, 0)
    reached[nreached] = -1
    nreached += 1
    for j in range(nt):
        reached[nreached] = touched[j]
        nreached += 1
    return status, bad, n_freed, rows[:nr], reached[:nreached]


@rule
def _host_schedule(R, i, M, leaf, retain, grad_of, needs, mode, marks, touched, rows, nr, nm, nt,
                   pending, n_freed):
    """reverse_schedule's step at host record i: its P_HOST row if an output needs a
    gradient (after the P_ACC rows of retained outputs), then its inputs need one."""
    m = R[i, 4]
    nin, nout = M[m + 1], M[m + 2]
    hit = False
    for k in range(nout):
        if needs[M[m + 3 + nin + k]]:
            hit = True
    if not hit:
        return OK, -1, nr, nm, nt, pending, n_freed
    flags = R[i, 5]
    if (mode & CHECK) and (flags & FREED):
        return GRAPH_FREED, i, nr, nm, nt, pending, n_freed
    for k in range(nout):
        y = M[m + 3 + nin + k]
        if needs[y] and retain[y] and not _seen(touched, nt, y):
            nr = _row(rows, nr, P_ACC, y, grad_of[y])
            touched[nt] = y
            nt += 1
    nr = _row(rows, nr, P_HOST, i, 0)
    if mode & FREE:
        R[i, 5] = flags | FREED
        n_freed += 1
    for k in range(nout):
        y = M[m + 3 + nin + k]
        if needs[y]:
            needs[y] = 0
            if not leaf[y]:
                pending -= 1
    for k in range(nin):
        s = M[m + 3 + k]
        if not needs[s]:
            needs[s] = 1
            marks[nm] = s
            nm += 1
            if not leaf[s]:
                pending += 1
    return OK, -1, nr, nm, nt, pending, n_freed


@rule
def _first(F32, F64, off, dt, s):
    if F64 is None or dt[s] == 0:
        return np.float64(F32[off[s]])
    return F64[off[s]]


@rule
def _compare(op, x, y):
    if op == CMP_EQ:
        return x == y
    if op == CMP_NE:
        return x != y
    if op == CMP_LT:
        return x < y
    if op == CMP_LE:
        return x <= y
    if op == CMP_GT:
        return x > y
    return x >= y


@rule
def _same(F, o, n, V, vi):
    for k in range(n):
        x, y = np.float64(F[o + k]), V[vi + k]
        if x != y and not (x != x and y != y):
            return False
    return True


@rule
def _copy_slot(F32, F64, off, size, dt, src, dst):
    o, od = off[src], off[dst]
    for k in range(size[src]):
        if F64 is None or dt[src] == 0:
            F32[od + k] = F32[o + k]
        else:
            F64[od + k] = F64[o + k]


@rule
def _step_inputs(step, carry, gather, idx, off, size, dt, F32, F64):
    """Before step `step` of a run: the carries (from the second step on) and the gathers of
    run_steps."""
    if step > 0:
        for c in range(carry.shape[0]):
            _copy_slot(F32, F64, off, size, dt, carry[c, 0], carry[c, 1])
    for g in range(gather.shape[0]):
        src, dst, w = gather[g, 0], gather[g, 1], gather[g, 2]
        if F64 is None or dt[src] == 0:
            gather_rows(F32, off[src], F32, off[dst], idx, step, w)
        else:
            gather_rows(F64, off[src], F64, off[dst], idx, step, w)


@intrinsic
def call_native(typingctx, addr, args):
    """Call the compiled function at `addr` (Numba's calling convention, returning an int64)
    with the values of the tuple `args`, and return its result; an exception it raises
    (bounds-checked builds) propagates. Specialized programs and their block passes
    (tapegrad.codegen) are called so: by address, not linked into the caller, whose compile
    would otherwise optimize and emit their code once more."""
    if not (isinstance(addr, types.Integer) and isinstance(args, types.BaseTuple)):
        return None
    argtys = tuple(args.types)

    def codegen(context, builder, sig, values):
        conv = context.call_conv
        fn = builder.inttoptr(values[0], conv.get_function_type(types.int64, argtys).as_pointer())
        parts = [builder.extract_value(values[1], k) for k in range(len(argtys))]
        status, out = conv.call_function(builder, fn, types.int64, argtys, parts)
        with cgutils.if_unlikely(builder, status.is_error):
            conv.return_status_propagate(builder, status)
        return out
    return types.int64(addr, args), codegen


@entry
def run_program_steps(addr, res, ptrs, n, out, hist, carry, gather, idx, size, dt, off, F32,
                      F64):
    """run_steps for a specialized program: the program at `addr` (codegen.entry_point) runs
    n times, with the carries, gathers and kept values of run_steps. One function for every
    program: linking a program into a step loop of its own optimized and emitted its code a
    second time (as long again as compiling the program: 1-2 s)."""
    for step in range(n):
        _step_inputs(step, carry, gather, idx, off, size, dt, F32, F64)
        j = call_native(addr, (ptrs,) + res)
        if j >= 0:
            return step, j
        if out >= 0:
            if dt[out] == 0:
                hist[step] = F32[off[out]]
            else:
                hist[step] = F64[off[out]]
    return n, -1


@numba.njit(parallel=dict(comprehension=False, reduction=False, inplace_binop=False, setitem=False,
                         numpy=False, stencil=False, fusion=False, prange=True),
            nogil=True, **ENTRY_OPTIONS)
def run_blocks(addr, ptrs, vbase, nth, At, Ut):
    """A fused pass on several threads (tapegrad.codegen): the pass's runs c = 0 .. nth-1, the
    compiled function at `addr`, on Numba's threads. The one parallel function: a program
    written with prange of its own took two to three times as long to compile (parfors)."""
    for c in prange(nth):
        call_native(addr, (ptrs, vbase, c, nth, At, Ut))


@entry
def run_steps(n, out, hist, carry, gather, idx, P, R, M, off, goff, size, dt, F32, C32, G32, F64,
              C64, G64, V):
    """Run program P n times, keeping the first value of slot `out` after each in hist.

    `carry` rows (src, dst) copy a step's final state into the slots the next step reads.
    `gather` rows (src, dst, row size) fill input slot dst with the rows idx[step] of slot src
    before each step (minibatches). Returns (steps done, failing guard row or -1).

    One step is one pass over the rows of P. The loop over them, and each row's work, is here
    rather than in functions of its own: each compiled function links, optimizes and emits every
    kernel it reaches once more, so an extra level costs seconds of first compile."""
    for step in range(n):
        _step_inputs(step, carry, gather, idx, off, size, dt, F32, F64)
        for j in range(P.shape[0]):
            kind, p1, p2, p3, p4, p5 = P[j, 0], P[j, 1], P[j, 2], P[j, 3], P[j, 4], P[j, 5]
            if kind == P_FWD or kind == P_AFFINE_FWD:   # records, or a fused chain's (fuse.py:
                hi = p2 if kind == P_FWD else p2 + 1     # fused in the specialized code, run as
                for i in range(p1, hi):                  # recorded here)
                    op, a, b, o, aux = R[i, 0], R[i, 1], R[i, 2], R[i, 3], R[i, 4]
                    if F64 is None or (op != OP_CAST and dt[o] == 0):
                        forward_record(op, a, b, o, aux, M, F32, C32, off, size)
                    elif op != OP_CAST:
                        forward_record(op, a, b, o, aux, M, F64, C64, off, size)
                    elif dt[o] == 0:
                        copy_fwd(view(F64, C64, off, size, a), view(F32, C32, off, size, o))
                    else:
                        copy_fwd(view(F32, C32, off, size, a), view(F64, C64, off, size, o))
            elif kind == P_SEED:
                o, m = goff[p1], size[p1]
                for k in range(m):
                    if G64 is None or dt[p1] == 0:
                        G32[o + k] = V[p2 + k]
                    else:
                        G64[o + k] = V[p2 + k]
            elif kind == P_SEEDSLOT:
                o, og, m = goff[p1], off[p2], size[p1]
                for k in range(m):
                    if F64 is None:
                        G32[o + k] = F32[og + k]
                    elif dt[p1] == 0:
                        G32[o + k] = F32[og + k] if dt[p2] == 0 else F64[og + k]
                    else:
                        G64[o + k] = F32[og + k] if dt[p2] == 0 else F64[og + k]
            elif kind == P_TAKE:
                o, og, m = goff[p1], off[p2], size[p1]
                for k in range(m):
                    if F64 is None or dt[p1] == 0:
                        F32[og + k] = G32[o + k]
                        G32[o + k] = 0
                    else:
                        F64[og + k] = G64[o + k]
                        G64[o + k] = 0
            elif kind == P_CMP:
                x = _first(F32, F64, off, dt, p2)
                y = V[p4] if p3 < 0 else _first(F32, F64, off, dt, p3)
                if _compare(p1, x, y) != (p5 != 0):
                    return step, j
            elif kind == P_VALUE:
                if F64 is None or dt[p1] == 0:
                    ok = _same(F32, off[p1], size[p1], V, p2)
                else:
                    ok = _same(F64, off[p1], size[p1], V, p2)
                if not ok:
                    return step, j
            elif kind == P_COPY and p2 >= 0:
                _copy_slot(F32, F64, off, size, dt, p1, p2)
            elif kind == P_BWD or kind == P_AFFINE_BWD:     # a record's backward, or a fused
                last = p1 if kind == P_BWD else p2              # chain's records (run as
                for i in range(last, p1 - 1, -1):               # recorded here)
                    op, a, b, o, aux, flags = R[i, 0], R[i, 1], R[i, 2], R[i, 3], R[i, 4], R[i, 5]
                    if kind == P_AFFINE_BWD and not flags & DIFF:
                        continue                    # a side record without a gradient
                    if G64 is None or (op != OP_CAST and dt[o] == 0):
                        reverse_record(op, a, b, o, aux, flags, M, F32, C32, G32, off, goff, size)
                    elif op != OP_CAST:
                        reverse_record(op, a, b, o, aux, flags, M, F64, C64, G64, off, goff, size)
                    else:
                        _reverse_cast(a, o, flags, goff, size, dt, G32, C32, G64, C64)
            elif kind == P_ZERO:
                _zero(G32, G64, goff, size, dt, p1)
            elif kind == P_ACC:
                _accumulate(p1, p2, off, goff, size, dt, G32, G64, F32, F64)
            elif kind == P_ADDG:
                o, og, m = goff[p1], off[p2], size[p1]
                for k in range(m):
                    if G64 is None or dt[p1] == 0:
                        G32[o + k] += F32[og + k]
                    else:
                        G64[o + k] += F64[og + k]
        if out >= 0:
            hist[step] = _first(F32, F64, off, dt, out)
    return n, -1


_NO_HIST = np.zeros(1)
_NO_CARRY = np.zeros((0, 2), np.int64)
_NO_GATHER = np.zeros((0, 3), np.int64)
_NO_IDX = np.zeros((1, 0), np.int64)


def run_program(P, R, M, off, goff, size, dt, F32, C32, G32, F64, C64, G64, V):
    """Run a recorded program once; return -1, or the row of the first guard that fails."""
    return run_steps(1, -1, _NO_HIST, _NO_CARRY, _NO_GATHER, _NO_IDX, P, R, M, off, goff, size,
                     dt, F32, C32, G32, F64, C64, G64, V)[1]


_NO_VALUES = np.zeros(0)     # eager rows read no guard values
_FORWARD = np.array([[P_FWD, 0, 0, 0, 0, 0]], np.int64)


def run_forward(R, lo, hi, M, off, goff, size, dt, F32, C32, G32, F64, C64, G64):
    """Run records lo..hi-1: a program of one row."""
    _FORWARD[0, 1] = lo
    _FORWARD[0, 2] = hi
    run_program(_FORWARD, R, M, off, goff, size, dt, F32, C32, G32, F64, C64, G64, _NO_VALUES)


def run_reverse(R, start, seed, M, vid, leaf, retain, grad_of, ver, needs, mode, arrays, host):
    """Backpropagate the gradient seeded in G[seed] through records start..0: the walk
    (reverse_schedule), then its rows (run_steps). `arrays()` gives the arenas as run_program
    takes them (off ... G64); `host(record, rows)` is called with the rows before each P_HOST
    row, to run them and then that record's Python backward, and last with record -1 and the
    rows after the last one (None: the caller knows there is no host record). Returns
    (status, failing record, n_freed, reached) as reverse_schedule; on a failed check no
    gradient has moved."""
    status, bad, n_freed, P, reached = reverse_schedule(R, start, seed, M, vid, leaf, retain,
                                                        grad_of, ver, needs, mode)
    if status == OK:
        if host is None:
            run_program(P, R, M, *arrays(), _NO_VALUES)
        else:
            lo = 0
            for j in np.flatnonzero(P[:, 0] == P_HOST).tolist():
                host(int(P[j, 1]), P[lo:j])
                lo = j + 1
            host(-1, P[lo:])
    return status, bad, n_freed, reached


def sources_stamp(names=("kernels.py", "interpret.py", "ops.py", "linalg/kernels.py")):
    """A hash of these files of the package (the sources compiled code is made of)."""
    h = hashlib.sha256()
    here = os.path.dirname(__file__)
    for name in names:
        with open(os.path.join(here, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def drop_stale_cache(folder, stamp, modules=("kernels", "interpret")):
    """Numba checks a cached function against its own source file only: run_steps, cached with
    the kernels linked in, would keep running the kernels of an edited kernels.py (and so would
    any cached caller in another file). When the sources' stamp is not the one the cache in
    `folder` was written with, delete these modules' cache files there, so they compile again.
    Returns how many files it deleted."""
    mark = os.path.join(folder, "tapegrad-sources")
    try:
        with open(mark) as f:
            if f.read() == stamp:
                return 0
    except OSError:
        pass
    dropped = 0
    try:
        for name in os.listdir(folder):
            if name.split(".")[0] in modules and name.endswith((".nbi", ".nbc")):
                try:
                    os.remove(os.path.join(folder, name))
                    dropped += 1
                except OSError:             # another process removed it first
                    pass
        with open(mark, "w") as f:
            f.write(stamp)
    except OSError:                         # a folder we cannot read or write: Numba's
        pass                                # cache is not written there either
    return dropped


_folder = getattr(getattr(run_steps, "_cache", None), "cache_path", None)   # None: no cache
if _folder:
    drop_stale_cache(_folder, sources_stamp())
