"""python -m tapegrad: train the 3x3 matrix regression of the tutorials and time each step."""
import argparse
import pathlib
import time

import numpy as np

import tapegrad as torch


def load():
    path = pathlib.Path(__file__).parent / "data" / "matrix_regression.csv"
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return torch.tensor(data[:, :3]), torch.tensor(data[:, 3:])


def train(steps, lr=0.25, seed=0):
    X, Y = load()
    torch.manual_seed(seed)
    W = torch.randn(3, 2, requires_grad=True)
    for _ in range(steps):
        loss = torch.norm(X @ W - Y) ** 2
        loss.backward()
        W.data = W.data - lr * W.grad
        W.grad.zero_()
    return W, loss


def train_compiled(steps, lr=0.25, seed=0):
    """The same loop, recorded once by tapegrad.compile and run inside one compiled call."""
    X, Y = load()
    torch.manual_seed(seed)
    W = torch.randn(3, 2, requires_grad=True)

    @torch.compile
    def step(X, Y):
        loss = torch.norm(X @ W - Y) ** 2
        loss.backward()
        W.data = W.data - lr * W.grad
        W.grad.zero_()
        return loss
    losses = step.run(steps, X, Y)
    return W, losses


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=21001)
    args = p.parse_args()
    t0 = time.perf_counter()
    train(2)                                    # compiles (or loads the compiled cache)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    W, loss = train(args.steps)
    dt = time.perf_counter() - t0
    print(f"W =\n{W.data}\nloss = {loss.item():.3e}")
    print(f"{args.steps} steps in {dt:.3f} s: {dt / args.steps * 1e6:.1f} us per step "
          f"(eager; first call with compilation {warm:.2f} s)")
    t0 = time.perf_counter()
    train_compiled(args.steps)      # records, and compiles the step's own code (or loads it)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    W2, losses = train_compiled(args.steps)
    dt = time.perf_counter() - t0
    same = np.allclose(W2.detach().numpy(), W.detach().numpy(), rtol=1e-5, atol=1e-6)
    print(f"{args.steps} steps in {dt:.3f} s: {dt / args.steps * 1e6:.2f} us per step "
          f"(tapegrad.compile, step.run(), recording included; the first run, compiling the "
          f"step's code, {warm:.2f} s; same W as eager: {same})")


if __name__ == "__main__":
    main()
