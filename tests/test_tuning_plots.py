"""Optuna's standard plots are written for a study, and skipped (not failed) when a study cannot support them."""

from __future__ import annotations

import optuna

from mlbench.runs.tuning.plots import save_study_plots


def _study(n_trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -(t.suggest_float("C", 0.1, 10, log=True) - 2) ** 2 + t.suggest_int("k", 1, 5) / 10,
                   n_trials=n_trials)
    return study


def test_every_plot_is_written_as_a_png(tmp_path):
    paths = save_study_plots(_study(12), tmp_path / "plots")
    assert [p.name for p in paths] == ["optimization_history.png", "param_importances.png", "parallel_coordinate.png"]
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 10_000


def test_a_single_trial_gives_only_the_history(tmp_path):
    assert [p.name for p in save_study_plots(_study(1), tmp_path)] == ["optimization_history.png"]
    empty = optuna.create_study()
    assert save_study_plots(empty, tmp_path / "none") == []
