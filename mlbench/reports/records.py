"""The runs a report reads: one record per FINISHED parent run, and their aggregates over seeds.

This module owns :class:`RunRecord`, reading the records from the MLflow store
(:func:`collect_runs`), selecting runs by configuration (:func:`filter_config`),
naming the report rows (:func:`label_rows`), the per-row mean ± sample std over
seeds (:func:`summarise`, :func:`paired_summaries`, :func:`trim_series`) and the
order and text format the report's tables share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlbench.api import MlbenchError
from mlbench.data.variants import trim_level

@dataclass
class RunRecord:
    """One FINISHED parent run, as a report uses it.

    ``config_digest``, ``code_digest`` and ``config_label`` are the run's identity
    (:mod:`mlbench.runs.identity`; for a run logged before runs carried them, a digest of
    its logged parameters, its code digest empty and a label saying so). ``row``
    is the report row it belongs to: the method name, or ``method [label]`` when
    the records hold several configurations of that method (set by
    :func:`label_rows`). ``fit_seconds`` is the logged fit time.
    """

    run_id: str
    method: str
    task: str
    seed: int
    fingerprint: str
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str
    start_time: int
    config_digest: str = ""
    code_digest: str = ""
    config_label: str = ""
    fit_seconds: float = 0.0
    row: str = ""
    predict_seconds: float | None = None  # as logged; None: the compute time minus the fit time
    label: str = ""  # the configuration's short label (tag ``mlbench.label``); "" for a run logged without one
    reused_fit_seconds: float | None = None  # the run's model came from the process's cache: that fit's time

    @property
    def row_name(self) -> str:
        return self.row or self.method

    @property
    def short_label(self) -> str:
        """The label the run carries, or the one :func:`mlbench.runs.identity.short_label` makes from its
        configuration's words (a run logged before runs carried one)."""
        if self.label:
            return self.label
        from mlbench.runs.identity import parse_config_label, short_label

        suite, study, overrides = parse_config_label(self.config_label)
        return short_label(self.method, overrides, suite=suite, study=study, digest=self.config_digest)

    @property
    def timed_fit_seconds(self) -> float:
        """The fit time to report: that of the fit whose model the run reused, else its own."""
        return self.reused_fit_seconds if self.reused_fit_seconds is not None else self.fit_seconds


#: A run logged before runs carried a configuration label.
LEGACY_LABEL = "logged without identity tags"


def _legacy_identity(tags: dict[str, str], params: dict[str, str]) -> tuple[str, str]:
    """(configuration digest, label) of a run without identity tags, from what it logged."""
    from mlbench.runs.identity import config_digest

    if "mlbench.study" in tags:  # a tuned run: its configuration is the best trial's
        best = {k[5:]: v for k, v in tags.items() if k.startswith("best.")}
        return config_digest(tags.get("mlbench.method", ""), best, params.get("preset")), f"tuned (study {tags['mlbench.study']})"
    kept = {k: v for k, v in params.items() if k not in ("seed", "preset")}
    return config_digest(tags.get("mlbench.method", ""), kept, params.get("preset")), LEGACY_LABEL


def collect_runs(tracker: Any, tasks: Sequence[str], config: str | None = None) -> list[RunRecord]:
    """Latest FINISHED parent run per (method, task, seed, fingerprint, configuration digest) of the given tasks.

    ``config`` filters the runs (:func:`filter_config`); rows are labelled by :func:`label_rows`.
    """
    latest: dict[tuple[str, str, int, str, str], RunRecord] = {}
    for task in tasks:
        for r in tracker.finished_parent_runs(task):
            tags = r.data.tags
            if "mlbench.method" not in tags:
                continue
            metrics = {k[5:]: v for k, v in r.data.metrics.items() if k.startswith("test_")}
            if "micro_f1" not in metrics:
                continue
            fit = r.data.metrics.get("fit_seconds", 0.0)
            metrics["compute_seconds"] = fit + r.data.metrics.get("predict_seconds", 0.0)
            digest, label = tags.get("mlbench.config_digest"), tags.get("mlbench.config_label")
            if not digest:
                digest, label = _legacy_identity(tags, r.data.params)
            rec = RunRecord(
                run_id=r.info.run_id,
                method=tags["mlbench.method"],
                task=tags.get("mlbench.task", task),
                seed=int(tags.get("mlbench.seed", 0)),
                fingerprint=tags.get("mlbench.fingerprint", ""),
                metrics=metrics,
                tags=tags,
                artifact_uri=r.info.artifact_uri,
                start_time=r.info.start_time,
                config_digest=digest,
                code_digest=tags.get("mlbench.code_digest", ""),
                config_label=label or LEGACY_LABEL,
                fit_seconds=fit,
                label=tags.get("mlbench.label", ""),
                reused_fit_seconds=(r.data.metrics.get("reused_fit_seconds")
                                    if tags.get("mlbench.fit.reused_model") == "true" else None),
            )
            key = (rec.method, rec.task, rec.seed, rec.fingerprint, rec.config_digest)
            if key not in latest or latest[key].start_time < rec.start_time:
                latest[key] = rec
    records = filter_config(list(latest.values()), config)
    return label_rows(records)


def suite_digests(spec: str) -> set[tuple[str, str]]:
    """(method, configuration digest) of every method of a suite (named or a YAML file), as its cells run."""
    from mlbench.runs.suite import cell_digest, load_suite

    suite = load_suite(spec)
    return {(method, cell_digest(suite, method)) for method in suite.methods}


def filter_config(records: list[RunRecord], config: str | None) -> list[RunRecord]:
    """Keep the runs of one kind of configuration.

    ``default``: runs that override nothing (label ``defaults``, or a suite cell
    that sets no parameter but the model it starts from); ``tuned``: tuned runs; a suite name or YAML file:
    the configurations that suite runs; otherwise a configuration digest (or a
    prefix of one). ``None`` keeps everything.
    """
    if not config:
        return records
    if config == "default":
        return [r for r in records if r.config_label == "defaults"
                or re.fullmatch(r"suite \S+(: init_from=<model of another run>)?", r.config_label)]
    if config == "tuned":
        return [r for r in records if r.config_label.startswith("tuned")]
    from mlbench.runs.suite import NAMED_SUITES

    if config in NAMED_SUITES or Path(config).is_file():
        wanted = suite_digests(config)
        return [r for r in records if (r.method, r.config_digest) in wanted]
    if not re.fullmatch(r"[0-9a-f]{4,}", config):
        raise MlbenchError(f"--config {config!r}: expected default, tuned, a suite name or file, or a configuration digest")
    return [r for r in records if r.config_digest.startswith(config)]


def label_rows(records: list[RunRecord]) -> list[RunRecord]:
    """Set each record's ``row`` to its configuration's short label (:attr:`RunRecord.short_label`).

    Two configurations with the same label (the same method's defaults in two suites, say) are told apart
    by their suite (``label@suite``) when that names them apart, else by their configuration digest.
    """
    configs: dict[str, dict[str, RunRecord]] = {}
    for r in records:
        configs.setdefault(r.short_label, {}).setdefault(r.config_digest, r)
    names: dict[tuple[str, str], str] = {}  # (label, config digest) -> row; runs without a digest share ""
    for label, by_digest in configs.items():
        if len(by_digest) == 1:
            names.update({(label, digest): label for digest in by_digest})
            continue
        suites = {d: _suite_of(r) for d, r in by_digest.items()}
        if all(suites.values()) and len(set(suites.values())) == len(suites):
            names.update({(label, d): f"{label}@{suite}" for d, suite in suites.items()})
        else:
            names.update({(label, d): f"{label}#{d[:8]}" for d in by_digest})
    for r in records:
        r.row = names[(r.short_label, r.config_digest)]
    return records


def _suite_of(r: RunRecord) -> str:
    return r.config_label[len("suite "):].split(":")[0] if r.config_label.startswith("suite ") else ""


#: The order of a report's rows: the paper's methods in its Table 1 order, then the classics, the pretrained
#: encoder's methods, and any other (by name).
METHOD_ORDER = ("br", "pcc", "omikuji", "xml-cnn", "cnn-rnn", "seq2seq", "seq2set", "lp", "rakel", "mlknn", "minilm",
                "seq2seq-minilm", "seq2set-minilm")


def row_method(row: str) -> str:
    """The method a row label begins with (``seq2set+glove50`` -> ``seq2set``)."""
    return re.split(r"[+@#]", row, maxsplit=1)[0]


def _method_key(row: str) -> tuple[int, str]:
    m = row_method(row)
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), row)


def summarise(records: Sequence[RunRecord], task: str) -> dict[str, dict[str, tuple[float, float, int]]]:
    """row -> metric -> (mean, sample std, n seeds) on ``task`` (a row is one method and configuration)."""
    by_method: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == task:
            by_method.setdefault(r.row_name, []).append(r)
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for m in sorted(by_method, key=_method_key):
        runs = by_method[m]
        keys = set().union(*(r.metrics for r in runs))
        out[m] = {}
        for k in keys:
            vals = np.array([r.metrics[k] for r in runs if k in r.metrics])
            out[m][k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    return out


def paired_summaries(records: Sequence[RunRecord], task_a: str, task_b: str) -> tuple[dict, dict]:
    """:func:`summarise` of two tasks, each method over the seeds it ran on both (a method on one only is left out)."""
    seeds_a = {(r.row_name, r.seed) for r in records if r.task == task_a}
    seeds_b = {(r.row_name, r.seed) for r in records if r.task == task_b}
    both = seeds_a & seeds_b
    kept = [r for r in records if (r.row_name, r.seed) in both]
    return summarise(kept, task_a), summarise(kept, task_b)


def _fmt(mean: float, std: float, n: int, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def trim_series(records: Sequence[RunRecord], base_task: str) -> dict[str, list[tuple[int, float, float]]]:
    """row -> [(k, mean micro-F1, std)] over ``<base>-trim<k>`` tasks (k = 0 is the base task).

    Every point of a row uses the same seeds: those the row ran at every k. A
    row is one configuration, so k = 0 comes from the same settings as the
    trimmed tasks; a row without a k = 0 run, with a single k, or without a
    seed common to all its k is left out.
    """
    per: dict[str, dict[int, dict[int, float]]] = {}
    for r in records:
        k = trim_level(r.task, base_task)
        if k is None:
            continue
        per.setdefault(r.row_name, {}).setdefault(k, {})[r.seed] = r.metrics["micro_f1"]
    out = {}
    for row in sorted(per, key=_method_key):
        points = per[row]
        common = set.intersection(*(set(v) for v in points.values()))
        if 0 not in points or len(points) < 2 or not common:
            continue
        pts = []
        for k in sorted(points):
            v = np.array([points[k][s] for s in sorted(common)])
            pts.append((k, float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0))
        out[row] = pts
    return out


def trim_seeds(records: Sequence[RunRecord], base_task: str, rows: Sequence[str]) -> dict[str, list[int]]:
    """row -> the seeds behind every point of its :func:`trim_series`."""
    per: dict[str, dict[int, set[int]]] = {}
    for r in records:
        k = trim_level(r.task, base_task)
        if k is not None and r.row_name in rows:
            per.setdefault(r.row_name, {}).setdefault(k, set()).add(r.seed)
    return {row: sorted(set.intersection(*per[row].values())) for row in rows if row in per}


def stale_entries(records: Sequence[Any]) -> list[dict[str, str]]:
    """(method, code digest, current digest) of every run whose method's code has changed since it ran: the
    report marks its rows stale (†) until they are rerun. A method this installation cannot load (a plugin
    not installed here) cannot be compared and is not listed."""
    from mlbench.registry import get_method
    from mlbench.runs.identity import method_code_digest

    out, current = [], {}
    for method, digest in sorted({(r.method, r.code_digest) for r in records}):
        if method not in current:
            try:
                current[method] = method_code_digest(get_method(method))
            except MlbenchError:  # not installed here
                current[method] = None
        if current[method] is not None and digest != current[method]:
            out.append({"method": method, "code_digest": digest, "current": current[method]})
    return out


def stale_rows(records: Sequence[Any], entries: Sequence[dict[str, str]], task: str | None = None) -> set[str]:
    """The rows with a run (on ``task``, when given) whose (method, code digest) the bundle lists as stale."""
    old = {(e["method"], e["code_digest"]) for e in entries}
    return {r.row_name for r in records if (r.method, r.code_digest) in old and (task is None or r.task == task)}


def stale_note(rows: set[str], entries: Sequence[dict[str, str]], elsewhere: Sequence[str] = (),
               task: str = "") -> str:
    """The footnote of the † marks; ``elsewhere``: rows whose runs on ``task`` are current but whose runs on
    the report's other tasks are not (a row of Table 1 is marked for its runs on the base task only)."""
    changes = "; ".join(f"{e['method']} {e['code_digest'] or '(none)'} → {e['current']}" for e in entries)
    where = f" on `{task}`" if task else ""
    other = (f" Current on `{task}`, stale on the other tasks of this report: {', '.join(elsewhere)}."
             if elsewhere else "")
    return (f"† stale: {len(rows)} row(s) hold runs{where} made with code that has changed since (code digest "
            f"then → when this report was written: {changes}). Their numbers are those of the older code; rerun "
            f"them with `mlbench bench` to refresh.{other}")
