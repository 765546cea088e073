"""Every seed program runs unchanged with tapegrad standing in for torch (skipped without shared/)."""
import pathlib
import subprocess
import sys

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "spec"
PROGRAMS = sorted((SHARED / "seed_programs").glob("*.py")) if SHARED.is_dir() else []


@pytest.mark.skipif(not PROGRAMS, reason="the shared seed programs are not on this machine")
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_seed_program_runs_under_tapegrad(program):
    r = subprocess.run([sys.executable, str(SHARED / "run_as_tapegrad.py"), str(program)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
