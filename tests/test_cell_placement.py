"""Which worker a cell prefers (mlbench.runs.dask_pool.placement): cells that share a worker's caches together."""

from __future__ import annotations

from collections import Counter

from mlbench.runs.cell import PlannedCell
from mlbench.runs.dask_pool import placement

W = ["tcp://a:1", "tcp://b:2"]


def cells(methods, tasks, seeds=(0, 1, 2), dataset=lambda t: t.split("-")[0]):
    return [PlannedCell(m, t, s, dataset=dataset(t)) for t in tasks for m in methods for s in seeds]


def test_one_method_on_one_dataset_stays_on_one_worker():
    todo = cells(["br", "pcc"], ["reuters", "reuters-shuffled", "reuters-trim5"])
    home = placement(todo, W)
    by_method = {m: {home[id(c)] for c in todo if c.method == m} for m in ("br", "pcc")}
    assert by_method == {"br": {W[0]}, "pcc": {W[1]}}  # every seed and variant of a method's dataset together


def test_groups_spread_largest_first_to_the_least_loaded_worker():
    todo = (cells(["br"], ["a"], seeds=range(6)) + cells(["br"], ["b"], seeds=range(4))
            + cells(["br"], ["c"], seeds=range(2)))
    load = Counter(placement(todo, W).values())
    assert load == {W[0]: 6, W[1]: 6}  # a (6) → first; b (4) → second; c (2) → second (4 < 6)


def test_fewer_datasets_than_workers_groups_by_task():
    todo = cells(["sleepy"], ["synthetic", "synthetic-shuffled"])
    home = placement(todo, W)
    assert {home[id(c)] for c in todo if c.task == "synthetic"} == {W[0]}
    assert {home[id(c)] for c in todo if c.task == "synthetic-shuffled"} == {W[1]}


def test_no_preference_where_it_would_leave_a_worker_idle():
    assert placement(cells(["seq2seq"], ["reuters"], seeds=range(5)), W) == {}  # seeds of one cell: any worker
    assert placement(cells(["xml-cnn", "seq2seq"], ["reuters"]), W + ["tcp://c:3"]) == {}
    assert placement(cells(["br", "pcc"], ["reuters"]), W[:1]) == {}  # one worker: nothing to choose


def test_a_cell_planned_without_a_dataset_groups_by_its_task():
    todo = [PlannedCell("br", "x", 0), PlannedCell("br", "y", 0), PlannedCell("br", "x", 1)]
    home = placement(todo, W)
    assert home[id(todo[0])] == home[id(todo[2])] != home[id(todo[1])]
