"""Cold start in fresh processes: import tapegrad, record and replay the seed's training step.

    pytest benchmarks/bench_coldstart.py --benchmark-enable --benchmark-columns=median,rounds

'warm cache' uses Numba's on-disk cache next to the package (what every run after the first
sees); 'empty cache'
compiles every interpreter and kernel from scratch in a new cache directory (what the very first
run after installing sees). The empty-cache case takes tens of seconds, so it only runs when
benchmarks are enabled, and it is marked slow (`-m "not slow"` leaves it out).
"""
import os
import subprocess
import sys
import tempfile

import pytest

PROGRAM = """
import time
t0 = time.perf_counter()
import tapegrad as torch
X = torch.tensor([[0.2, 0.5, 0.7], [0.4, 0.6, 0.8], [0.3, 0.6, 0.9]])
Y = torch.tensor([[0.8, 0.8], [0.7, 0.9], [0.9, 0.9]])
W = torch.randn(3, 2, requires_grad=True)

@torch.compile
def step(X, Y):
    loss = torch.norm(X @ W - Y) ** 2
    loss.backward()
    W.data = W.data - 0.25 * W.grad
    W.grad.zero_()
    return loss

losses = step.run(STEPS, X, Y)
assert losses[-1] < losses[0]
print(time.perf_counter() - t0)
"""


def _fresh_process(cache_dir=None, steps=100):
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    program = PROGRAM.replace("STEPS", str(steps))
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


# With compile()'s defaults both stay interpreted unless the step's specialized code is already
# in the disk cache (then it loads): 21001 interpreted steps take about 0.06 s, less than the
# 3 s its compile would take (tapegrad.compile's tiering by cost)
STEP_COUNTS = [100, 21001]


def report_info(steps, impl):
    return dict(workload=f"W ({steps} steps)", impl=impl, steps=1, unit="process")


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_first_step_warm_cache(benchmark, steps):
    benchmark.group = "cold start: fresh process to first compiled steps"
    benchmark.extra_info.update(report_info(steps, "warm cache"))
    _fresh_process(steps=steps)           # fill the package's own cache if it is not yet
    benchmark.pedantic(_fresh_process, kwargs={"steps": steps}, rounds=3, iterations=1)


@pytest.mark.slow
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_first_step_empty_cache(benchmark, steps):
    benchmark.group = "cold start: fresh process to first compiled steps"
    benchmark.extra_info.update(report_info(steps, "empty cache"))
    if benchmark.disabled:
        pytest.skip("compiles everything from scratch (tens of seconds): run with "
                    "--benchmark-enable")
    with tempfile.TemporaryDirectory() as d:
        benchmark.pedantic(_fresh_process, args=(d,), kwargs={"steps": steps}, rounds=1,
                           iterations=1)


# The first-ever compile of a program as users write it (bench_programs' workloads): a fresh
# process whose program cache is empty (the package's own compiled functions are in their
# cache, as after any earlier use), and one where it holds the program (a second process).
COMPILE = """
import sys, time
sys.path.insert(0, BENCH)
import tapegrad
import bench_programs as bp
X, y = bp.data(WORKLOAD, tapegrad)
step, _ = bp.program(WORKLOAD, tapegrad)
step = tapegrad.compile(step, specialize_after=0)     # compile at the first replay
times = []
while "specialized" not in step.explain() and len(times) < 5:   # records, then compiles
    t0 = time.perf_counter()
    step.run(2, X, y)                                  # run() compiles its loop too
    times.append(time.perf_counter() - t0)
assert "specialized with a fused pass" in step.explain(), step.explain()
t0 = time.perf_counter()
step.run(2, X, y)                                      # two steps of the compiled code
print(times[-1] - (time.perf_counter() - t0))
"""
COMPILE_WORKLOADS = ["nn.Linear M", "MLP 32-64-1"]


def compile_seconds(workload, cache_home, threads):
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, NUMBA_NUM_THREADS=str(threads))
    env.pop("NUMBA_CACHE_DIR", None)
    program = (COMPILE.replace("BENCH", repr(os.path.dirname(os.path.abspath(__file__))))
               .replace("WORKLOAD", repr(workload)))
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("workload", COMPILE_WORKLOADS)
def test_compile_of_new_program(benchmark, workload, threads):
    """Seconds to specialize the program (fresh process, empty program cache) and to load it
    from the disk cache (a second process); the step's own time is taken out."""
    benchmark.group = "compile: a program's first specialization, and from the disk cache"
    benchmark.extra_info.update(workload=f"compile {workload}", impl=f"{threads} thread(s)",
                                steps=1, unit="process")
    if benchmark.disabled:
        pytest.skip("compiles programs in fresh processes: run with --benchmark-enable")
    times = []

    def fresh():
        with tempfile.TemporaryDirectory() as d:
            times.append(compile_seconds(workload, d, threads))
            benchmark.extra_info["warm cache s"] = compile_seconds(workload, d, threads)
            return times[-1]
    benchmark.pedantic(fresh, rounds=2, iterations=1)
    benchmark.extra_info["compile s"] = times
