"""Thread count for tapegrad's kernels: torch.set_num_threads / torch.get_num_threads.

The kernels run on the calling thread, except the fused pass over large data of a specialized
program (tapegrad.fuse), which splits its blocks of rows into this many runs on Numba's threads
(prange; at most NUMBA_NUM_THREADS run at once). The default is NUMBA_NUM_THREADS, the cores
Numba sees, as torch's default is the number of cores. With one thread the pass runs without
prange and no thread pool starts. Numba's thread pool starts at the first pass on several
threads; between passes its threads spin briefly, then sleep (OpenMP's default policy).

A process forked after that pool started would be killed by Numba when it starts a parallel
pass (GNU OpenMP, Numba's threading layer where TBB is missing, is not fork-safe), so a forked
child starts with one thread (raising it there again is unsafe if the parent ran a pass on
several). Numba's fork-safe workqueue layer was 4x slower on the
10,000 x 100 step with two threads (a launch per step costs hundreds of microseconds).
"""
import operator
import os
import sys

import numba
import numpy as np

COUNT = np.array([numba.config.NUMBA_NUM_THREADS], np.int64)     # read by compiled code


def _set(n):
    """Set the count; from one thread to more or back, specialized programs with a fused pass
    are written for the other case (tapegrad.codegen): the tape's generation tells them."""
    if (n == 1) != (COUNT[0] == 1):
        tape = sys.modules.get(__name__.rsplit(".", 1)[0] + ".tape")
        if tape is not None:
            tape.TAPE.gen += 1
    COUNT[0] = n


def _one_thread():
    _set(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread)


def set_num_threads(n):
    """Sets the number of threads tapegrad's parallel kernels use (PyTorch's name and checks)."""
    if isinstance(n, bool):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    try:
        n = operator.index(n)
    except TypeError:
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}") \
            from None
    if n > 2 ** 31 - 1:
        raise ValueError("Overflow when unpacking long")
    if n < 1:
        raise RuntimeError("set_num_threads expects a positive integer")
    _set(n)


def get_num_threads():
    """The number of threads tapegrad's parallel kernels use."""
    return int(COUNT[0])
