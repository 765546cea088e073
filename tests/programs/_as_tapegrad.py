"""Run a PyTorch program with tapegrad standing in for torch.

    python _as_tapegrad.py PROGRAM.py [ARGS...]

Every `import torch...` in PROGRAM resolves to the matching `tapegrad...` module (torch.nn ->
tapegrad.nn, torch.utils.data -> tapegrad.utils.data, ...); the program itself is not edited.
"""
import importlib
import importlib.abc
import importlib.util
import runpy
import sys


class TorchAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `torch` and `torch.<sub>` to `tapegrad` and `tapegrad.<sub>`."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("tapegrad" + spec.name[len("torch"):])

    def exec_module(self, module):
        pass


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.meta_path.insert(0, TorchAlias())
    program = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
