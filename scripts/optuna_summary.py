"""Summary of a stored Optuna study (a ``hparams_search=`` sweep), for committing next to the results:

    python scripts/optuna_summary.py outputs/neva_osie/optuna/neva_osie.db --out docs/neva

writes ``<out>/<study>_trials.csv`` (every trial: number, state, value, duration, parameters),
``<out>/<study>_best.json`` (best value and parameters, trial counts, parameter importances) and
``<out>/<study>.png`` (the optimisation history with the best value so far, and the parameters'
importances: optuna's random-forest estimate, mean decrease in impurity; its fANOVA evaluator
fails with scikit-learn 1.9).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna


def summarise(database: Path, study_name: str | None, out: Path) -> dict:
    storage = f"sqlite:///{database}"
    names = optuna.get_all_study_summaries(storage)
    if study_name is None:
        if len(names) != 1:
            raise SystemExit(f"{database} holds {len(names)} studies; name one with --study")
        study_name = names[0].study_name
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise SystemExit(f"study {study_name!r} in {database} has no completed trial yet")
    out.mkdir(parents=True, exist_ok=True)
    trials = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params"))
    trials["duration"] = trials["duration"].dt.total_seconds().round(1)
    trials.columns = [c.removeprefix("params_") for c in trials.columns]
    trials.to_csv(out / f"{study_name}_trials.csv", index=False)
    importances = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    )
    best = study.best_trial
    summary = {
        "study": study_name,
        "direction": study.direction.name.lower(),
        "trials_complete": len(complete),
        "trials_total": len(study.trials),
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "param_importances": {k: round(v, 4) for k, v in importances.items()},
        "trial_seconds_median": float(trials.loc[trials.state == "COMPLETE", "duration"].median()),
    }
    (out / f"{study_name}_best.json").write_text(json.dumps(summary, indent=2) + "\n")
    figure(study, complete, importances, out / f"{study_name}.png")
    return summary


def figure(study, complete, importances: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    numbers = [t.number for t in complete]
    values = np.array([t.value for t in complete])
    best = np.maximum.accumulate(values) if study.direction.name == "MAXIMIZE" else np.minimum.accumulate(values)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.4, 1]})
    a.plot(numbers, values, "o", ms=4, color="#888", label="trial")
    a.step(numbers, best, where="post", color="#c33", label="best so far")
    a.set(xlabel="trial", ylabel="objective", title=f"{study.study_name}: optimisation history")
    a.legend(frameon=False)
    names = list(importances)[::-1]
    b.barh(names, [importances[n] for n in names], color="#36c")
    b.set(xlabel="importance (mean decrease in impurity)", title="parameter importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="the study's SQLite file")
    parser.add_argument("--study", default=None, help="study name (default: the only one in the file)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the summary files")
    args = parser.parse_args()
    if not args.database.is_file():
        raise SystemExit(f"no study database at {args.database}")
    print(json.dumps(summarise(args.database, args.study, args.out), indent=2))


if __name__ == "__main__":
    main()
