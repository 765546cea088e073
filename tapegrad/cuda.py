"""There is no GPU here: tapegrad runs on the CPU only."""


def is_available():
    return False


def device_count():
    return 0


def manual_seed(seed):
    pass


def manual_seed_all(seed):
    pass
