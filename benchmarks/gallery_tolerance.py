"""False-alarm and detection rates of the gallery's comparison (tests/test_gallery.py).

The gallery compares one run through ``cloud()`` with one run of PyMC's own sampler (2 chains x
200 draws each), element by element: means within ``MEAN_TOL_SD`` of PyMC's posterior sd and
sds within a factor ``SD_RATIO``; a case that fails is sampled again with 4x the draws by both
samplers and fails only if that recheck fails too.

How often does a *correct* sampler fail (false alarm), and how often is a sampler whose
posterior sd is 2x (or 0.5x) off caught (detection)? Both are measured here by resampling long
runs of PyMC's own sampler (``--sample``: 4 chains x 2000 draws per gallery case, stored as
``.npz``): a trial takes a random window of 200 consecutive draws from each of two chains as
"the cloud run" and windows from the two other chains as "PyMC's run" (800-draw windows for
the recheck), so the two runs are independent and each has the autocorrelation of real NUTS
draws. A wrong sampler is emulated by scaling the cloud run's draws of one variable about the
true mean (the long run's) by 2 or 0.5, in the first run and in the recheck: one variable at a
time (the worst variable's rate is reported) and every variable at once.

    python benchmarks/gallery_tolerance.py --sample          # long runs (~10 CPU-minutes)
    python benchmarks/gallery_tolerance.py --trials 2000     # rates, as JSON

Windows of one long run share its tuning, so they are somewhat less noisy than separately
tuned 200-draw runs; ``--short`` measures the false-alarm rate of given cases with real,
independent short runs of PyMC's sampler instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

#: Draws per chain of the gallery's first comparison and of its recheck (RECHECK_FACTOR 4).
FIRST, RECHECK = 200, 800


def long_runs(folder: Path, names: list[str] | None) -> None:
    """4 chains x 2000 draws (1000 tuning steps) of PyMC's sampler per gallery case."""
    import pymc as pm
    from gallery_models import GALLERY

    folder.mkdir(parents=True, exist_ok=True)
    for case in GALLERY:
        target = folder / f"{case.name}.npz"
        if (names and case.name not in names) or target.exists():
            continue
        started = time.perf_counter()
        result = pm.sample(
            model=case.build(),
            draws=2000,
            tune=1000,
            chains=4,
            cores=1,
            random_seed=7,
            nuts_sampler="pymc",
            progressbar=False,
            compute_convergence_checks=False,
        )
        posterior = result.posterior
        np.savez(target, **{name: posterior[name].values for name in posterior.data_vars})
        print(f"{case.name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)


def flat(draws: np.ndarray) -> np.ndarray:
    """``(chains, draws, *shape)`` -> ``(chains * draws, elements)`` as floats."""
    return draws.reshape(draws.shape[0] * draws.shape[1], -1).astype(float)


def mismatch(
    got: dict[str, np.ndarray], want: dict[str, np.ndarray], mean_tol: float, sd_ratio: float
) -> bool:
    """The gallery's rule (``posterior_difference``): does any element disagree?"""
    for name, reference in want.items():
        values = got[name]
        mean_a, mean_b = values.mean(0), reference.mean(0)
        sd_a, sd_b = values.std(0), reference.std(0)
        if np.any(np.abs(mean_a - mean_b) > mean_tol * sd_b + 1e-6):
            return True
        moving = sd_b > 1e-9
        ratio = np.where(moving, sd_a / np.where(moving, sd_b, 1.0), 1.0)
        if np.any((ratio < 1 / sd_ratio) | (ratio > sd_ratio)):
            return True
    return False


def window(
    arrays: dict[str, np.ndarray], chains: tuple[int, int], length: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Consecutive ``length`` draws from each of ``chains``, at random offsets, flattened."""
    total = next(iter(arrays.values())).shape[1]
    starts = [int(rng.integers(0, total - length + 1)) for _ in chains]
    return {
        name: flat(np.stack([a[c, s : s + length] for c, s in zip(chains, starts, strict=True)]))
        for name, a in arrays.items()
    }


def scaled(
    run: dict[str, np.ndarray], truth: dict[str, np.ndarray], name: str | None, factor: float
) -> dict[str, np.ndarray]:
    """``run`` with variable ``name`` (every variable when None) scaled about the true mean."""
    return {
        key: truth[key] + factor * (values - truth[key]) if name is None or key == name else values
        for key, values in run.items()
    }


def trial(
    arrays: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    rng: np.random.Generator,
    rules: list[tuple[float, float]],
    wrong: tuple[str | None, float] | None,
) -> list[bool]:
    """One gallery comparison per rule: whether its first comparison fails (one entry per rule),
    then whether the test fails, the recheck too (one per rule); ``wrong``: (variable, factor)
    of a wrong sampler."""
    order = rng.permutation(4)
    mine, theirs = (int(order[0]), int(order[1])), (int(order[2]), int(order[3]))
    got, want = window(arrays, mine, FIRST, rng), window(arrays, theirs, FIRST, rng)
    got_again, want_again = window(arrays, mine, RECHECK, rng), window(arrays, theirs, RECHECK, rng)
    if wrong is not None:
        got, got_again = (scaled(run, truth, *wrong) for run in (got, got_again))
    first = [mismatch(got, want, *rule) for rule in rules]
    return first + [
        failed and mismatch(got_again, want_again, *rule)
        for failed, rule in zip(first, rules, strict=True)
    ]


def rates(folder: Path, trials: int, rules: list[tuple[float, float]], seed: int) -> dict:
    """Per case and rule: false-alarm rate, detection rates of 2x and 0.5x sd errors."""
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        truth = {name: flat(a).mean(0) for name, a in arrays.items()}
        case: dict[str, Any] = {"elements": int(sum(flat(a).shape[1] for a in arrays.values()))}
        outcomes = np.mean([trial(arrays, truth, rng, rules, None) for _ in range(trials)], 0)
        first, false = outcomes[: len(rules)], outcomes[len(rules) :]
        case["first_comparison_fails"] = dict(zip(map(str, rules), map(float, first), strict=True))
        case["false_alarm"] = dict(zip(map(str, rules), map(float, false), strict=True))
        for factor in (2.0, 0.5):
            worst = np.ones(len(rules))
            for name in [
                n for n, a in arrays.items() if np.ptp(a.astype(float)) > 0
            ]:  # constants: no sd
                caught = np.mean(
                    [trial(arrays, truth, rng, rules, (name, factor)) for _ in range(trials // 4)],
                    axis=0,
                )[len(rules) :]
                worst = np.minimum(worst, caught)
            case[f"detect_x{factor:g}_worst_variable"] = dict(
                zip(map(str, rules), map(float, worst), strict=True)
            )
            every = np.mean(
                [trial(arrays, truth, rng, rules, (None, factor)) for _ in range(trials // 4)],
                axis=0,
            )[len(rules) :]
            case[f"detect_x{factor:g}_every_variable"] = dict(
                zip(map(str, rules), map(float, every), strict=True)
            )
        report[path.stem] = case
        print(path.stem, json.dumps(case), file=sys.stderr, flush=True)
    summary = {}
    for rule in rules:
        key = str(rule)
        false = [c["false_alarm"][key] for c in report.values()]
        detect = [
            min(c[f"detect_x{f}_worst_variable"][key] for f in ("2", "0.5"))
            for c in report.values()
        ]
        every = [
            min(c[f"detect_x{f}_every_variable"][key] for f in ("2", "0.5"))
            for c in report.values()
        ]
        first = [c["first_comparison_fails"][key] for c in report.values()]
        summary[key] = {
            "rechecks_per_gallery_run": float(sum(first)),
            "worst_detection_every_variable": float(min(every)),
            "gallery_false_alarm": float(1 - np.prod(1 - np.array(false))),
            "worst_case_false_alarm": float(max(false)),
            "worst_detection": float(min(detect)),
        }
    return {"trials": trials, "cases": report, "summary": summary}


def short_runs(names: list[str], runs: int, rules: list[tuple[float, float]]) -> dict:
    """False alarms with real, separately tuned 2 x 200-draw runs of PyMC's sampler (pairs of
    runs compared; the recheck pairs 2 x 800-draw runs)."""
    import pymc as pm
    from gallery_models import CASES

    def run(name: str, draws: int, seed: int) -> dict[str, np.ndarray]:
        result = pm.sample(
            model=CASES[name].build(),
            draws=draws,
            tune=draws,
            chains=2,
            random_seed=seed,
            nuts_sampler="pymc",
            progressbar=False,
            compute_convergence_checks=False,
        )
        return {n: flat(result.posterior[n].values) for n in result.posterior.data_vars}

    report = {}
    for name in names:
        first = [run(name, FIRST, 100 + i) for i in range(runs)]
        again = [run(name, RECHECK, 500 + i) for i in range(2)]
        pairs = [(i, j) for i in range(runs) for j in range(i + 1, runs)]
        report[name] = {
            str(rule): {
                "first_comparison_fails": float(
                    np.mean([mismatch(first[i], first[j], *rule) for i, j in pairs])
                ),
                "recheck_fails": bool(mismatch(again[0], again[1], *rule)),
            }
            for rule in rules
        }
        print(name, json.dumps(report[name]), file=sys.stderr, flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/gallery_long_runs"))
    parser.add_argument("--sample", action="store_true", help="sample the long runs first")
    parser.add_argument("--cases", nargs="*", default=None)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short", type=int, default=0, help="real short runs per case")
    parser.add_argument(
        "--rules", default="0.5:2.0,0.5:1.6,0.5:1.5", help="MEAN_TOL_SD:SD_RATIO,..."
    )
    args = parser.parse_args(argv)
    rules = [tuple(map(float, r.split(":"))) for r in args.rules.split(",")]
    if args.sample:
        long_runs(args.folder, args.cases)
    if args.short:
        print(json.dumps(short_runs(args.cases or [], args.short, rules), indent=1))
        return
    print(json.dumps(rates(args.folder, args.trials, rules, args.seed), indent=1))


if __name__ == "__main__":
    main()
