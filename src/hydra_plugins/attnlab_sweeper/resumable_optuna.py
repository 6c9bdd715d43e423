"""An Optuna sweep that a kill does not restart: the study lives in a database (SQLite by default)
and a second start with the same study name runs only the trials still missing.

Hydra's Optuna sweeper already reopens a stored study (``load_if_exists``) but then runs
``n_trials`` more; here ``n_trials`` is the study's total. A trial that was running when the sweep
was killed is marked failed (its job never reported) and run again. Job folders are numbered by
Optuna's trial number, so a continued sweep does not reuse the numbers of the trials it keeps.

Config: ``hydra.sweeper._target_: hydra_plugins.attnlab_sweeper.resumable_optuna.ResumableOptunaSweeper``
(conf/hparams_search/gating_mnist_optuna.yaml). It lives here because Hydra instantiates sweepers only
from the ``hydra_plugins`` namespace package.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)

__all__ = ["ResumableOptunaSweeper", "sqlite_file"]


def sqlite_file(storage: Any) -> Path | None:
    """The database file of a ``sqlite:///PATH`` storage URL (None for other storages)."""
    text = str(storage or "")
    return Path(text[len("sqlite:///") :]) if text.startswith("sqlite:///") and len(text) > len("sqlite:///") else None


class ResumableOptunaSweeper(OptunaSweeper):
    """:class:`OptunaSweeper` whose ``n_trials`` counts the trials already completed in its storage."""

    def sweep(self, arguments: List[str]) -> None:
        impl = self.sweeper
        if impl.storage:
            self._continue_study(impl, arguments)
        return super().sweep(arguments)

    @staticmethod
    def _continue_study(impl: Any, arguments: List[str]) -> None:
        import optuna

        database = sqlite_file(impl.storage)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not its folder
        try:
            study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
        except KeyError:  # no study of that name yet: a fresh sweep
            return
        check_search_space(study, impl, arguments)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        storage = study._storage
        for trial in running:  # its sweep was killed; no job will report it
            if hasattr(storage, "set_trial_state"):  # optuna 2, which hydra-optuna-sweeper 1.2 needs
                storage.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
            else:
                storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        left = max(0, int(impl.n_trials) - done)
        log.info(
            "Optuna study %r: %d trial(s) done, %d interrupted, %d to go", impl.study_name, done, len(running), left
        )
        impl.n_trials = left
        impl.job_idx = len(study.trials)


def check_search_space(study: Any, impl: Any, arguments: List[str]) -> None:
    """Refuse, in one line, to continue a stored study whose trials searched another space: TPE would
    mix the two spaces' trials, and the study's best parameters would no longer describe one search."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    from attnlab.utils.cli import fail

    impl._process_searchspace_config()
    wanted, _ = create_params_from_overrides(impl._parse_sweeper_params_config() + list(arguments))
    for trial in study.get_trials(deepcopy=False):
        stored = trial.distributions
        if not stored:
            continue
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            fail(
                f"Optuna study {impl.study_name!r} in {impl.storage} was run over another search space "
                f"({', '.join(changed)} differ): give this sweep a new hydra.sweeper.study_name, or remove the study"
            )
        return
