"""The scope and the report of the mutation run (scripts/mutation.sh, docs/testing.md).

`python scripts/mutation_report.py globs` prints the mutant-name patterns mutmut runs,
`survivors` the last run's survivors that the equivalents file does not explain;
`python scripts/mutation_report.py report` reads mutmut's results under mutants/ and the
equivalents file, prints per module the mutants, killed, survivors justified as equivalent
and unexplained survivors, and exits non-zero when a module's killed share is under the
target or any survivor is unexplained.

A mutant is killed when a test fails (or times out) with it in place. A survivor may be
listed in tests/mutation_equivalents.txt, one per line: `<mutant name>  <why no input can
tell it from the original>`; lines starting with # are comments. A reason that starts with
`[accepted]` marks a survivor that is not equivalent but that no test here can kill (it only
shows under a race between processes, say): it is reported in its own column and counts
neither as killed nor as equivalent. An entry naming a mutant
that no longer exists, or that is now killed, is reported as stale (and fails the run), so
the file never hides a mutant that changed.
"""
from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.txt"
TARGET = 0.90

# Module label -> mutmut mutant-name patterns (module.x_function or module.xǁClassǁmethod).
# Large files are narrowed to the functions that carry the logic the issue names.
SCOPE: dict[str, list[str]] = {
    "loss (modeling/loss.py)": ["modeling.loss.*"],
    "training step weighting": [
        "modeling.training.x_accumulate_step_gradients__mutmut_*",
        "modeling.training_data.x_encode_examples__mutmut_*",
        "modeling.training_data.x_collate__mutmut_*",
    ],
    "design": [
        "annotation.studies.design.x__truth_pattern__mutmut_*",
        "annotation.studies.design.x__deal_rounds__mutmut_*",
        "annotation.studies.design.x__assign_framings__mutmut_*",
        "annotation.studies.design.x__swap_path__mutmut_*",
    ],
    "assignment": ["annotation.studies.assignment.x_*"],
    "judgments": [
        "annotation.studies.judgments.x_judgment_record__mutmut_*",
        "annotation.studies.judgments.x__lock_and_touch__mutmut_*",
        "annotation.studies.judgments.x__revise__mutmut_*",
        "annotation.studies.judgments.x_closed_reason__mutmut_*",
    ],
    "participant ticket": [
        "annotation.studies.participant_views.x__new_ticket__mutmut_*",
        "annotation.studies.participant_views.x__read_ticket__mutmut_*",
    ],
    "persona metrics": [
        "modeling.metrics.x_with_normalised__mutmut_*",
        "modeling.metrics.x__mean__mutmut_*",
        "modeling.metrics.x_framing_metrics_row__mutmut_*",
        "modeling.metrics.x_framing_metrics__mutmut_*",
        "modeling.metrics.x_framing_effects__mutmut_*",
    ],
    "analysis rates": [
        "annotation.analysis.statistics.x__statistic_columns__mutmut_*",
        "annotation.analysis.statistics.x__ratio__mutmut_*",
        "annotation.analysis.statistics.x__framing_summaries__mutmut_*",
    ],
    "policies": ["simulation.policies.*"],
    "engine decision step": [
        "simulation.engine.x__run_chunk__mutmut_*",
        "simulation.engine.x_uniform_choice__mutmut_*",
        "simulation.engine.x_softmax_choice__mutmut_*",
    ],
}

KILLED = {1, 3, 36, 24, -24, 152, 255, 37, -9, -11}  # a failed test, pytest error, timeout, crash
SURVIVED = {0}


def all_globs() -> list[str]:
    return [pattern for patterns in SCOPE.values() for pattern in patterns]


def load_results(mutants_dir: Path) -> dict[str, int | None]:
    results: dict[str, int | None] = {}
    for meta in sorted(mutants_dir.rglob("*.meta")):
        results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


def load_equivalents(path: Path) -> dict[str, str]:
    """{mutant name: reason}; a line without a reason is an error naming the line."""
    entries: dict[str, str] = {}
    if not path.exists():
        return entries
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\s+", line, maxsplit=1)
        if len(parts) < 2 or not parts[1].strip():
            raise SystemExit(f"{path}:{number}: '{parts[0]}' has no justification")
        if parts[0] in entries:
            raise SystemExit(f"{path}:{number}: '{parts[0]}' is listed twice")
        entries[parts[0]] = parts[1].strip()
    return entries


def module_of(name: str) -> str | None:
    for label, patterns in SCOPE.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return label
    return None


def report(mutants_dir: Path, equivalents_path: Path) -> int:
    results = load_results(mutants_dir)
    equivalents = load_equivalents(equivalents_path)
    rows = []
    unexplained: list[tuple[str, str]] = []
    stale = [name for name in equivalents if name not in results or results[name] not in SURVIVED]
    totals = dict(mutants=0, killed=0, equivalent=0, accepted=0, unexplained=0)
    failed = False
    for label in SCOPE:
        names = sorted(name for name in results if module_of(name) == label)
        killed = [n for n in names if results[n] in KILLED]
        survived = [n for n in names if n not in killed]
        listed = [n for n in survived if n in equivalents and results[n] in SURVIVED]
        accepted = [n for n in listed if equivalents[n].startswith("[accepted]")]
        equivalent = [n for n in listed if n not in accepted]
        others = [n for n in survived if n not in listed]
        unexplained += [(n, _status(results[n])) for n in others]
        n = len(names)
        raw = len(killed) / n if n else 0.0
        # The mutation score: killed among the mutants that can be killed at all.
        killable = n - len(equivalent)
        score = len(killed) / killable if killable else 1.0
        failed |= n == 0 or score < TARGET
        rows.append((label, n, len(killed), len(equivalent), len(accepted), len(others), raw, score))
        totals["mutants"] += n
        totals["killed"] += len(killed)
        totals["equivalent"] += len(equivalent)
        totals["accepted"] += len(accepted)
        totals["unexplained"] += len(others)
    head = (f"{'module':28} {'mutants':>7} {'killed':>7} {'equiv':>6} {'accept':>6} {'unexpl':>6} "
            f"{'killed%':>8} {'score':>8}")
    print(head)
    print("-" * len(head))
    for label, n, k, e, a, u, raw, score in rows:
        print(f"{label:28} {n:7d} {k:7d} {e:6d} {a:6d} {u:6d} {raw:8.1%} {score:8.1%}")
    n = totals["mutants"]
    print("-" * len(head))
    print(f"{'all':28} {n:7d} {totals['killed']:7d} {totals['equivalent']:6d} "
          f"{totals['accepted']:6d} {totals['unexplained']:6d} {totals['killed'] / max(n, 1):8.1%} "
          f"{totals['killed'] / max(n - totals['equivalent'], 1):8.1%}")
    print(f"\nkilled%: killed / mutants. score: killed / (mutants - equiv), the mutation score.\n"
          f"target: a score of at least {TARGET:.0%} in every module, and no unexplained survivor\n(equiv: survivors no input can tell from the original; "
          "accept: survivors that only a race between processes or a GPU would show, each with its reason in "
          f"{equivalents_path.relative_to(ROOT)})")
    if unexplained:
        print(f"\nunexplained survivors ({len(unexplained)}; `.venv/bin/mutmut show NAME` prints the change):")
        for name, status in unexplained:
            print(f"  {name}  [{status}]")
    if stale:
        print(f"\nstale entries in {equivalents_path.relative_to(ROOT)} (not a surviving mutant now):")
        for name in stale:
            print(f"  {name}")
    return 1 if failed or unexplained or stale else 0


def _status(code) -> str:
    return {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}.get(
        code, f"exit code {code}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "report"
    if command == "globs":
        print("\n".join(all_globs()))
    elif command == "survivors":
        results = load_results(ROOT / "mutants")
        equivalents = load_equivalents(EQUIVALENTS)
        print("\n".join(name for name, code in sorted(results.items())
                        if module_of(name) and (code is None or (code not in KILLED
                                                                 and name not in equivalents))))
    elif command == "report":
        sys.exit(report(ROOT / "mutants", EQUIVALENTS))
    else:
        sys.exit(f"usage: {sys.argv[0]} globs|report")
