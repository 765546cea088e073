"""tapegrad.bench: the report and the ratio gate on synthetic pytest-benchmark JSON reports."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tapegrad import bench

SEED_STEPS, SHORT = 21001, 1000
# (workload, impl, median of one timed call in seconds, steps per call)
RUN = [
    ("S", "fused njit", 0.84e-3, SEED_STEPS),
    ("S", "tapegrad run()", 2.4e-3, SEED_STEPS),
    ("S", "tapegrad call", 1.76e-3, SHORT),
    ("S", "tapegrad eager", 2.9e-3, 100),
    ("S", "numpy", 0.73e-3, 100),
    ("S", "torch eager", 0.108, SHORT),
    ("S", "jax.jit step", 9.1e-3, SHORT),
    ("D", "fused njit", 8.0e-6, 100),
    ("D", "tapegrad call", 8.3e-6, 100),
    ("D", "torch eager", 620e-6, 100),
    ("W (100 steps)", "warm cache", 0.92, 1),
    ("W (100 steps)", "empty cache", 31.0, 1),
]


def benchmark(workload, impl, median, steps, name=None, group="a group"):
    """One benchmark as pytest-benchmark writes it to its JSON report."""
    unit = {"D": "op", "W": "process"}.get(workload[0], "step")
    return {"name": name or f"test_{workload}[{impl}]", "group": group,
            "stats": {"median": median, "min": median * 0.9, "rounds": 5},
            "extra_info": {"workload": workload, "impl": impl, "steps": steps, "unit": unit}}


def report(rows=RUN, slower=None):
    """A pytest-benchmark JSON report of rows; slower: {(workload, impl): factor}."""
    slower = slower or {}
    return {"machine_info": {"machine": "x86_64", "system": "Linux", "python_version": "3.11.7",
                             "cpu": {"brand_raw": "Test CPU 9000", "count": 2},
                             "libraries": {"numpy": "2.4.6", "torch": None},
                             "threads": {"OMP_NUM_THREADS": "1"},
                             "command": "python -m pytest benchmarks"},
            "datetime": "2026-01-01T00:00:00",
            "benchmarks": [benchmark(w, i, t * slower.get((w, i), 1.0), n)
                           for w, i, t, n in rows]}


def per_step(workload, impl):
    return next(t / n for w, i, t, n in RUN if (w, i) == (workload, impl))


def statuses(rows):
    return {(w, impl): status for w, impl, *_, status in rows}


# ---- parse and format ----

def test_per_step_time_is_the_median_over_the_steps_of_a_call():
    found = bench.entries(report())
    for w, impl, t, n in RUN:
        assert found[w, impl].per_step == pytest.approx(t / n)
        assert found[w, impl].unit == {"D": "op", "W": "process"}.get(w[0], "step")


def test_the_fastest_of_benchmarks_with_the_same_labels_counts():
    data = report([("S", "tapegrad eager", 3e-3, 100), ("S", "fused njit", 1e-3, SEED_STEPS)])
    data["benchmarks"].append(benchmark("S", "tapegrad eager", 20e-3, SHORT, name="other"))
    entry = bench.entries(data)["S", "tapegrad eager"]
    assert entry.per_step == pytest.approx(20e-3 / SHORT)
    assert entry.names == ("test_S[tapegrad eager]", "other")
    assert "tapegrad eager: the fastest of test_S[tapegrad eager], other" in \
        bench.format_report(data, "cmd")


def test_unlabeled_benchmarks_are_grouped_by_their_group():
    data = report([])
    data["benchmarks"].append({"name": "test_thing[x]", "group": "things", "extra_info": {},
                               "stats": {"median": 2e-6}})
    entry = bench.entries(data)["things", "test_thing[x]"]
    assert entry.per_step == 2e-6 and entry.unit == "call"


@pytest.mark.parametrize("seconds,text", [(1.14e-7, "114 ns"), (8e-10, "0.8 ns"),
                                          (1.76e-6, "1.76 us"), (2.1e-3, "2.1 ms"),
                                          (31.0, "31 s"), (1.0, "1 s")])
def test_format_time_picks_the_unit(seconds, text):
    assert bench.format_time(seconds) == text


@pytest.mark.parametrize("t,ref,text", [(1e-6, 52e-6, "52x faster"), (1.3, 1.0, "1.3x slower"),
                                        (0.114e-6, 108e-6, "950x faster"),
                                        (2.0, 1.0, "2.0x slower"), (9.96, 1.0, "10x slower"),
                                        (1.0, 1.0, "1.0x slower")])
def test_format_ratio(t, ref, text):
    assert bench.format_ratio(t, ref) == text


def test_report_has_a_table_per_workload_with_ratios_to_torch_and_the_reference():
    text = bench.format_report(report(), "python -m tapegrad.bench")
    assert "Test CPU 9000, 2 cores" in text and "numpy 2.4.6" in text
    assert "OMP_NUM_THREADS=1" in text and "python -m tapegrad.bench" in text
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert [h.split(":")[0] for h in heads] == ["## S", "## D", "## W (100 steps)"]
    rows = {cells[0]: cells for cells in _table_rows(text)}
    run = rows["tapegrad run()"]
    assert run[1] == bench.format_time(per_step("S", "tapegrad run()"))
    assert run[2] == bench.format_ratio(per_step("S", "tapegrad run()"),
                                        per_step("S", "torch eager"))
    assert run[3] == bench.format_ratio(per_step("S", "tapegrad run()"),
                                        per_step("S", "fused njit"))
    assert rows["fused njit"][3] == "-" and rows["torch eager"][2] == "-"
    assert rows["warm cache"] == ["warm cache", bench.format_time(0.92)]     # no ratios for W
    assert "| impl" in text and "median per op" in text and "median per process" in text


def _table_rows(text):
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("impl", "") and set(cells[0]) != {"-"}:
            yield cells


# ---- gate ----

def test_baseline_holds_ratios_to_the_reference_of_workloads_that_have_one():
    base = bench.make_baseline(report(), "cmd")
    assert set(base["workloads"]) == {"S", "D"}                # W has no fused njit
    s = base["workloads"]["S"]
    assert s["reference"] == "fused njit" and "fused njit" not in s["impls"]
    assert s["impls"]["tapegrad call"]["ratio"] == pytest.approx(
        per_step("S", "tapegrad call") / per_step("S", "fused njit"))
    assert base["machine"]["cpu"].startswith("Test CPU 9000") and base["command"] == "cmd"


def test_gate_passes_within_the_margin_and_on_a_uniformly_slower_machine():
    base = bench.make_baseline(report(), "cmd")
    ours = {(w, i): 1.4 for w, i, *_ in RUN if i.startswith("tapegrad")}
    for slower in [ours, {(w, i): 3.0 for w, i, *_ in RUN}]:
        rows = bench.check(report(slower=slower), base, margin=0.5)
        assert set(statuses(rows).values()) == {"ok", "not gated"}


def test_gate_fails_on_a_kernel_made_three_times_slower():
    base = bench.make_baseline(report(), "cmd")
    rows = bench.check(report(slower={("S", "tapegrad run()"): 3.0}), base, margin=0.5)
    assert statuses(rows)["S", "tapegrad run()"] == "REGRESSED"
    assert [s for s in statuses(rows).values() if s == "REGRESSED"] == ["REGRESSED"]
    text = bench.format_check(rows, 0.5, "baseline.json")
    ratio = per_step("S", "tapegrad run()") / per_step("S", "fused njit")
    assert "FAILED" in text and f"S tapegrad run() {3 * ratio:.3g} > {ratio:.3g}" in text


def test_missing_entries_and_other_libraries_are_not_failures():
    base = bench.make_baseline(report(), "cmd")
    deselected = [r for r in RUN if r[1] not in ("tapegrad call", "torch eager")]
    rows = bench.check(report(deselected, slower={("S", "jax.jit step"): 10.0}), base, 0.5)
    got = statuses(rows)
    assert got["S", "tapegrad call"] == got["S", "torch eager"] == "not checked"
    assert got["S", "jax.jit step"] == got["S", "numpy"] == "not gated"
    assert "REGRESSED" not in got.values()
    no_reference = [r for r in RUN if r[:2] != ("D", "fused njit")]
    got = statuses(bench.check(report(no_reference), base, 0.5))
    assert {got["D", i] for i in ("tapegrad call", "torch eager")} == {"not checked"}


def test_reference_override_gates_a_workload_without_fused_njit():
    rows = [("SGDRegressor 3x3", "tapegrad run()", 16e-3, SEED_STEPS),
            ("SGDRegressor 3x3", "numpy", 7.3e-3, SHORT)]
    assert bench.make_baseline(report(rows), "cmd")["workloads"] == {}
    refs = {"SGDRegressor 3x3": "numpy"}
    base = bench.make_baseline(report(rows), "cmd", refs)
    assert base["workloads"]["SGDRegressor 3x3"]["reference"] == "numpy"
    slowed = report(rows, slower={("SGDRegressor 3x3", "tapegrad run()"): 3.0})
    assert statuses(bench.check(slowed, base, 0.5)) == {
        ("SGDRegressor 3x3", "tapegrad run()"): "REGRESSED"}
    assert "vs numpy" in bench.format_report(report(rows), "cmd", refs)


# ---- main ----

def test_main_reports_saves_and_checks(tmp_path, capsys):
    run, slow, base = tmp_path / "run.json", tmp_path / "slow.json", tmp_path / "base.json"
    run.write_text(json.dumps(report()))
    slow.write_text(json.dumps(report(slower={("D", "tapegrad call"): 3.0})))
    assert bench.main(["--json", str(run), "--save-baseline", str(base)]) == 0
    out = capsys.readouterr().out
    assert "## S" in out and "tapegrad run()" in out and "--save-baseline" in out
    assert json.loads(base.read_text())["workloads"]["D"]["reference"] == "fused njit"
    assert bench.main(["--json", str(run), "--check", str(base)]) == 0
    assert "passed" in capsys.readouterr().out
    assert bench.main(["--json", str(slow), "--check", str(base)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "D tapegrad call" in out
    assert bench.main(["--json", str(slow), "--check", str(base), "--margin", "3"]) == 0
    capsys.readouterr()
    # a run without the references checks nothing: that is not a pass
    no_refs = tmp_path / "no_refs.json"
    no_refs.write_text(json.dumps(report([r for r in RUN if r[1] != "fused njit"])))
    assert bench.main(["--json", str(no_refs), "--check", str(base)]) == 2
    assert "NOTHING CHECKED" in capsys.readouterr().out


def test_save_baseline_merge_keeps_the_other_workloads(tmp_path, capsys):
    full, part, base = tmp_path / "full.json", tmp_path / "part.json", tmp_path / "base.json"
    full.write_text(json.dumps(report()))
    assert bench.main(["--json", str(full), "--save-baseline", str(base)]) == 0
    before = json.loads(base.read_text())
    part.write_text(json.dumps(report([r for r in RUN if r[0] == "D"],
                                      slower={("D", "tapegrad call"): 2.0})))
    assert bench.main(["--json", str(part), "--save-baseline", str(base), "--merge"]) == 0
    capsys.readouterr()
    after = json.loads(base.read_text())
    assert set(after["workloads"]) == set(before["workloads"])
    for w in before["workloads"]:
        if w != "D":
            assert after["workloads"][w] == before["workloads"][w]
    d_old, d_new = before["workloads"]["D"], after["workloads"]["D"]
    ratio = d_new["impls"]["tapegrad call"]["ratio"]
    assert ratio == pytest.approx(2.0 * d_old["impls"]["tapegrad call"]["ratio"])
    assert "--merge" in d_new["saved_by"] and "cpu" in d_new
    # without --merge the file holds the run's workloads only
    assert bench.main(["--json", str(part), "--save-baseline", str(base)]) == 0
    assert set(json.loads(base.read_text())["workloads"]) == {"D"}


def test_main_rejects_a_bad_reference_and_a_missing_benchmarks_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        bench.main(["--reference", "S"])
    assert err.value.code == 2 and "WORKLOAD=IMPL" in capsys.readouterr().err
    assert bench.main(["--benchmarks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and str(tmp_path) in err


@pytest.mark.slow
def test_quick_run_end_to_end():
    """A real run of a tiny selection: the D chain's compiled call against its reference."""
    folder = Path(bench.__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        pytest.skip("no benchmarks folder (installed without the source checkout)")
    selection = "chain_replayed and (fused or tapegrad) and not interpreted and not eager"
    out = subprocess.run([sys.executable, "-m", "tapegrad.bench", "--quick", "-k", selection],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "## D" in out.stdout and "| tapegrad call" in out.stdout
    assert "| fused njit" in out.stdout and "2 passed" in out.stderr
