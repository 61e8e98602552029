"""Optuna's standard plots of a finished study, as PNG files to log with the tuned parent run.

Uses Optuna's matplotlib visualisation (no plotly): optimisation history,
hyperparameter importances and parallel coordinates. A plot that the study
cannot support (e.g. importances with fewer than two finished trials, or no
parameter that varies) is skipped with a log line, never an error: the plots
decorate a tuning run and must not fail it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

#: File name -> Optuna plotting function name (in ``optuna.visualization.matplotlib``).
PLOTS: dict[str, str] = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


def _finished(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]


def _supported(name: str, study: Any) -> str | None:
    """Why ``name`` cannot be drawn for ``study``, or None."""
    done = _finished(study)
    if not done:
        return "no finished trial"
    varying = {k for t in done for k in t.params if len({repr(u.params.get(k)) for u in done}) > 1}
    if name != "optimization_history.png" and len(done) < 2:
        return "fewer than two finished trials"
    if name != "optimization_history.png" and not varying:
        return "no hyperparameter varies across the finished trials"
    return None


def save_study_plots(study: Any, out_dir: Path | str) -> list[Path]:
    """Write the standard plots of ``study`` into ``out_dir``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for filename, func_name in PLOTS.items():
        reason = _supported(filename, study)
        if reason is not None:
            log.info("study %s: no %s (%s)", study.study_name, filename, reason)
            continue
        plot: Callable[..., Any] = getattr(ovm, func_name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
                result = plot(study)
        except Exception as exc:  # a decoration must not fail the tuning run
            log.warning("study %s: %s failed: %s: %s", study.study_name, func_name, type(exc).__name__, exc)
            plt.close("all")
            continue
        axes = result.flat[0] if hasattr(result, "flat") else result
        fig = axes.figure
        fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 5))
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
