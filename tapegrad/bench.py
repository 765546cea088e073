"""The benchmark report and the ratio-gated regression gate.

    python -m tapegrad.bench [-k EXPR] [--quick] [--json FILE]
                             [--check BASELINE [--margin 0.5]]
                             [--save-baseline FILE [--merge]]

Runs the pytest-benchmark suite of the source checkout (benchmarks/) once, or reads the JSON
of an earlier run, and prints per workload each implementation's median time per step and its
ratio to torch eager and to the workload's reference (the fused @njit loop), as Markdown tables.
Every benchmark labels itself: extra_info workload, impl, steps (per timed call) and unit.

The gate compares ratios to the reference measured in the same run, not absolute times, with a
committed baseline, so it holds on a shared, noisy machine: tapegrad's ratio regresses when it
exceeds the baseline's by more than the margin.
"""
import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

REFERENCE = "fused njit"           # every gated workload's default reference
TORCH = "torch eager"
OURS = "tapegrad"                  # impls starting with this are gated; the others only shown
IMPL_ORDER = ("tapegrad eager", "tapegrad call", "tapegrad run()", "tapegrad call (interpreted)",
              "tapegrad run() (interpreted)", "numpy", "fused njit", "torch eager",
              "jax.jit step", "warm cache", "empty cache")
TITLES = {"S": "the seed's 3x3 matrix regression",
          "M": "full-batch linear regression, medium",
          "L": "full-batch linear regression, large",
          "L2": "full-batch linear regression, large, two columns",
          "D": "the 100-op elementwise chain, forward and backward",
          "W": "cold start, fresh process to first compiled steps"}
LIBRARIES = ("tapegrad", "numpy", "numba", "torch", "jax")
# --quick: no test marked slow (compiling into an empty cache, the largest sizes), few rounds
QUICK = ["-m", "not slow", "--benchmark-min-rounds=3", "--benchmark-max-time=0.1"]


class Entry(NamedTuple):
    workload: str
    impl: str
    per_step: float                # seconds: the median of one timed call / its steps
    unit: str
    names: tuple                   # the benchmarks it comes from (the fastest one counts)


# ---- parse ----

def entries(report):
    """{(workload, impl): Entry} of a pytest-benchmark JSON report. A benchmark without labels
    is its own impl in a workload named after its group; of several benchmarks with the same
    labels (the same measurement in two groups), the fastest per step counts."""
    out = {}
    for bench in report["benchmarks"]:
        info = bench.get("extra_info", {})
        workload = info.get("workload") or bench.get("group") or "unlabeled"
        impl = info.get("impl") or bench["name"]
        per_step = bench["stats"]["median"] / info.get("steps", 1)
        old = out.get((workload, impl))
        names = (old.names if old else ()) + (bench["name"],)
        if old is None or per_step < old.per_step:
            out[workload, impl] = Entry(workload, impl, per_step, info.get("unit", "call"), names)
        else:
            out[workload, impl] = old._replace(names=names)
    return out


def machine(report):
    """The machine, library versions and thread settings of a run, as short strings."""
    info = report.get("machine_info", {})
    cpu = info.get("cpu", {})
    libs = info.get("libraries") or {name: _version(name) for name in LIBRARIES}
    return {
        "cpu": f"{cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores, "
               f"{info.get('machine', '?')} {info.get('system', '')} {info.get('release', '')}",
        "python": f"{info.get('python_implementation', '')} {info.get('python_version', '?')}",
        "libraries": ", ".join(f"{k} {v}" for k, v in libs.items() if v)
                     + ("" if "libraries" in info else " (importable here; not in the JSON)"),
        "threads": " ".join(f"{k}={v}" for k, v in info.get("threads", {}).items()) or "?",
        "pytest": info.get("command", "?"),
    }


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---- compute ----

def workloads(found):
    """Workload names in report order: S, M, L, D, W..., then the others alphabetically."""
    order = list(TITLES)

    def key(w):
        head = w.split()[0]
        return (order.index(head) if head in order else len(order), w)
    return sorted({w for w, _ in found}, key=key)


def impls(found, workload):
    def key(impl):
        return (IMPL_ORDER.index(impl) if impl in IMPL_ORDER else len(IMPL_ORDER), impl)
    return sorted((i for w, i in found if w == workload), key=key)


def reference(found, workload, references):
    """The workload's reference entry (references: {workload: impl} overrides), or None."""
    return found.get((workload, references.get(workload, REFERENCE)))


# ---- format ----

def format_time(seconds):
    """3 significant digits in s, ms, us or ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(t, ref):
    """t against ref: '52x faster', '1.3x slower' (2 significant digits)."""
    x = float(f"{ref / t if t < ref else t / ref:.2g}")
    digits = f"{x:.1f}" if x < 10 else f"{x:.0f}"
    return f"{digits}x {'faster' if t < ref else 'slower'}"


def markdown(rows):
    """A Markdown table whose columns are also aligned as plain text; rows[0] is the header."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]

    def line(row):
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |"
    return "\n".join([line(rows[0]), line(["-" * w for w in widths]), *map(line, rows[1:])])


def format_report(report, command, references=None):
    references = references or {}
    found = entries(report)
    info = machine(report)
    lines = ["# tapegrad benchmarks", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    commit = report.get("commit_info") or {}
    lines += [f"- command: {command}", f"- date: {report.get('datetime', '?')}",
              f"- commit: {commit.get('id', '?')[:10]}" + " (dirty)" * bool(commit.get("dirty"))]
    for w in workloads(found):
        ref = reference(found, w, references)
        torch = found.get((w, TORCH))
        unit = next(e.unit for (v, _), e in found.items() if v == w)
        title = TITLES.get(w.split()[0])
        ref_name = ref.impl if ref else references.get(w, REFERENCE)
        rows = [["impl", f"median per {unit}", f"vs {TORCH}", f"vs {ref_name}"]]
        notes = []
        for impl in impls(found, w):
            e = found[w, impl]
            rows.append([impl, format_time(e.per_step),
                         _versus(e, torch), _versus(e, ref)])
            if len(e.names) > 1:
                notes.append(f"{impl}: the fastest of {', '.join(e.names)}")
        used = [c for c in range(4) if (c < 2 or any(row[c] for row in rows[1:]))
                and not (c == 3 and ref_name == TORCH)]     # the same column twice
        rows = [[row[c] for c in used] for row in rows]
        lines += ["", f"## {w}" + (f": {title}" if title else ""), "", markdown(rows)]
        lines += [""] * bool(notes) + notes
    return "\n".join(lines)


def _versus(entry, other):
    if other is None:
        return ""
    return "-" if entry is other else format_ratio(entry.per_step, other.per_step)


# ---- gate ----

def make_baseline(report, command, references=None):
    """Every entry's ratio to its workload's reference in this run (workloads without a
    reference are left out), with the machine and the command."""
    references = references or {}
    found = entries(report)
    out = {"machine": machine(report), "command": command, "date": report.get("datetime"),
           "workloads": {}}
    for w in workloads(found):
        ref = reference(found, w, references)
        if ref is None:
            continue
        ratios = {impl: {"ratio": found[w, impl].per_step / ref.per_step,
                         "per_step": found[w, impl].per_step}
                  for impl in impls(found, w) if impl != ref.impl}
        out["workloads"][w] = {"reference": ref.impl, "reference_per_step": ref.per_step,
                               "impls": ratios}
    return out


def merge_baseline(old, new):
    """Baseline `old` with the workloads of `new` replaced or added; each of those says the
    machine, date and command of its run, as the file's own header describes the others."""
    out = dict(old, workloads=dict(old.get("workloads", {})))
    for w, spec in new["workloads"].items():
        out["workloads"][w] = dict(spec, saved_by=new["command"], date=new["date"],
                                   cpu=new["machine"]["cpu"])
    return out


def check(report, baseline, margin):
    """One row per entry of the baseline: (workload, impl, baseline ratio, ratio or None,
    per step or None, reference per step or None, status); status is 'ok', 'REGRESSED',
    'not checked' (missing from this run) or 'not gated' (not tapegrad's)."""
    found = entries(report)
    rows = []
    for w, spec in baseline["workloads"].items():
        ref = found.get((w, spec["reference"]))
        for impl, base in spec["impls"].items():
            e = found.get((w, impl))
            ratio = e.per_step / ref.per_step if e and ref else None
            if ratio is None:
                status = "not checked"
            elif not impl.startswith(OURS):
                status = "not gated"
            else:
                status = "REGRESSED" if ratio > base["ratio"] * (1 + margin) else "ok"
            rows.append((w, impl, base["ratio"], ratio, e and e.per_step,
                         ref and ref.per_step, status))
    return rows


def format_check(rows, margin, path):
    table = [["workload", "impl", "baseline ratio", "ratio", "per step", "reference",
              "status"]]
    for w, impl, base, ratio, t, ref, status in rows:
        table.append([w, impl, f"{base:.3g}", "" if ratio is None else f"{ratio:.3g}",
                      "" if t is None else format_time(t), "" if ref is None else
                      format_time(ref), status])
    bad = [row for row in rows if row[-1] == "REGRESSED"]
    checked = sum(row[-1] in ("ok", "REGRESSED") for row in rows)
    if bad:
        verdict = (f"FAILED: {len(bad)} ratio(s) regressed by more than {margin:.0%}: "
                   + "; ".join(f"{w} {impl} {r:.3g} > {base:.3g} x {1 + margin:g}"
                               for w, impl, base, r, *_ in bad))
    elif not checked:
        verdict = ("NOTHING CHECKED: no tapegrad ratio of the baseline was measured (is the "
                   "reference in the run? -k and --quick may leave it out)")
    else:
        verdict = (f"passed: no ratio regressed by more than {margin:.0%} ({checked} "
                   f"checked)")
    return "\n".join([f"## Gate against {path} (ratio = time per step / the workload's "
                      "reference, same run)", "", markdown(table), "", verdict])


# ---- run ----

def benchmarks_dir(given):
    """--benchmarks, else the benchmarks folder of the source checkout, else ./benchmarks;
    None (and a message) if it has no bench_*.py."""
    candidates = [Path(given)] if given else [
        Path(__file__).resolve().parent.parent / "benchmarks", Path.cwd() / "benchmarks"]
    for path in candidates:
        if any(path.glob("bench_*.py")):
            return path
    print(f"tapegrad.bench: no benchmarks (bench_*.py) in {', '.join(map(str, candidates))}; "
          "they come with the source checkout, not with the installed package: pass "
          "--benchmarks DIR or --json FILE", file=sys.stderr)
    return None


def run_suite(directory, json_path, keyword=None, quick=False):
    """Run the benchmarks with pytest in a subprocess (its output goes to stderr); its exit
    code."""
    if Path.cwd() in directory.resolve().parents:
        directory = directory.resolve().relative_to(Path.cwd())
    cmd = [sys.executable, "-m", "pytest", str(directory), "-p", "no:cacheprovider", "-q",
           "-o", "python_files=bench_*.py", "--benchmark-enable", "--benchmark-quiet",
           f"--benchmark-json={json_path}", *(["-k", keyword] if keyword else []),
           *(QUICK if quick else [])]
    print("running:", shlex.join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, stdout=2).returncode


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tapegrad.bench", description="Run the "
                                "benchmarks once, print per-step medians and ratios, and gate "
                                "ratios against a baseline.")
    p.add_argument("-k", dest="keyword", help="pytest -k expression selecting benchmarks")
    p.add_argument("--quick", action="store_true", help="smoke test: skip tests marked slow "
                   "(empty Numba cache, the largest sizes) and run few rounds")
    p.add_argument("--benchmarks", metavar="DIR", help="the benchmarks folder (default: the "
                   "source checkout's, else ./benchmarks)")
    p.add_argument("--json", metavar="FILE", help="report on this pytest-benchmark JSON "
                   "instead of running the benchmarks")
    p.add_argument("--save-json", metavar="FILE", help="keep the run's pytest-benchmark JSON")
    p.add_argument("--check", metavar="BASELINE", help="fail (exit code 1) when a tapegrad "
                   "ratio regressed against this baseline file")
    p.add_argument("--margin", type=float, default=0.5, help="allowed relative increase of a "
                   "ratio (default 0.5: 50%%)")
    p.add_argument("--save-baseline", metavar="FILE", help="write this run's ratios")
    p.add_argument("--merge", action="store_true", help="with --save-baseline: replace only "
                   "the workloads this run measured in FILE, keep its others (each workload "
                   "then says its own machine, date and command)")
    p.add_argument("--reference", metavar="WORKLOAD=IMPL", action="append", default=[],
                   help=f"the reference of a workload (default {REFERENCE!r}) for the "
                   "report and --save-baseline; --check uses the baseline's")
    args = p.parse_args(argv)
    if any("=" not in r for r in args.reference):
        p.error("--reference takes WORKLOAD=IMPL")
    args.reference = dict(r.split("=", 1) for r in args.reference)
    return args


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "tapegrad.bench",
                          *(sys.argv[1:] if argv is None else argv)])
    if args.json:
        report = json.loads(Path(args.json).read_text())
        code = 0
    else:
        directory = benchmarks_dir(args.benchmarks)
        if directory is None:
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            json_path = Path(args.save_json or Path(tmp) / "benchmarks.json")
            json_path.unlink(missing_ok=True)
            code = run_suite(directory, json_path, args.keyword, args.quick)
            report = json.loads(json_path.read_text()) if json_path.exists() else None
        if report is None or not report["benchmarks"]:
            print(f"tapegrad.bench: no benchmark ran (pytest exit code {code})", file=sys.stderr)
            return 2
    print(format_report(report, command, args.reference))
    if code != 0:       # a failed benchmark: report what ran, but neither gate nor save
        print(f"\ntapegrad.bench: the benchmark run failed (pytest exit code {code})",
              file=sys.stderr)
        return 2
    if args.save_baseline:
        base = make_baseline(report, command, args.reference)
        path = Path(args.save_baseline)
        if args.merge and path.exists():
            base = merge_baseline(json.loads(path.read_text()), base)
        path.write_text(json.dumps(base, indent=1) + "\n")
        print(f"\nbaseline written to {args.save_baseline}")
    if args.check:
        rows = check(report, json.loads(Path(args.check).read_text()), args.margin)
        print("\n" + format_check(rows, args.margin, args.check))
        if any(row[-1] == "REGRESSED" for row in rows):
            return 1
        return 0 if any(row[-1] == "ok" for row in rows) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
