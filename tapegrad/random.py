"""Random numbers: one global generator, seeded by manual_seed."""
import numpy as np

DEFAULT_SEED = 67280421310721


class Generator:
    """torch.Generator: an independent stream, ``manual_seed(s)`` restarts it."""

    def __init__(self, device="cpu"):
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed):
        self._seed = int(seed)
        self._g = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self):
        return self._seed

    def seed(self):
        return self.manual_seed(np.random.SeedSequence().entropy % (1 << 63))._seed


default_generator = Generator()


def manual_seed(seed):
    """Seed every random function of tapegrad (randn, rand, normal, randperm, init, ...)."""
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def _rng(generator=None):
    from .tape import TAPE
    if TAPE.rec is not None:
        TAPE.rec.python_write("a random function")
    return (generator or default_generator)._g
