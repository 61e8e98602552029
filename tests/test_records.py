"""The runs a report reads: row labels per configuration, seed aggregates, configuration filters, trim series."""

from __future__ import annotations

import pytest

from mlbench.reports.records import (RunRecord, filter_config, label_rows, paired_summaries, summarise, trim_seeds,
                                     trim_series)


def rec(method, task, seed, f1, digest="d1", label="defaults"):
    return RunRecord(f"{method}-{task}-{seed}-{digest}", method, task, seed, "fp", {"micro_f1": f1}, {}, "", 0,
                     config_digest=digest, config_label=label)


def test_a_method_in_one_configuration_is_its_own_row_and_several_are_labelled():
    records = label_rows([rec("br", "t", 0, 0.8), rec("pcc", "t", 0, 0.8, "a", "suite x"),
                          rec("pcc", "t", 0, 0.7, "b", "--param beam_width=1")])
    # a row is the configuration's short label: the method, then the parameters it overrides
    assert [r.row_name for r in records] == ["br", "pcc", "pcc+beam_width=1"]
    # one label in two configurations: told apart by their suites where they differ, else by digest
    same = label_rows([rec("br", "t", 0, 0.8, "aaaaaaaa1", "suite s"), rec("br", "t", 0, 0.7, "bbbbbbbb2", "suite s")])
    assert [r.row_name for r in same] == ["br#aaaaaaaa", "br#bbbbbbbb"]
    suites = label_rows([rec("br", "t", 0, 0.8, "aaaaaaaa1", "suite s"), rec("br", "t", 0, 0.7, "bbbbbbbb2", "suite u")])
    assert [r.row_name for r in suites] == ["br@s", "br@u"]
    # runs logged without a configuration digest: one row per method, never one row for all of them
    legacy = label_rows([rec("br", "t", 0, 0.8, ""), rec("pcc", "t", 0, 0.7, "")])
    assert [r.row_name for r in legacy] == ["br", "pcc"]


def test_summarise_is_mean_std_and_count_per_row():
    s = summarise(label_rows([rec("br", "t", 0, 0.8), rec("br", "t", 1, 0.9), rec("br", "other", 0, 0.1)]), "t")
    mean, std, n = s["br"]["micro_f1"]
    assert mean == pytest.approx(0.85) and n == 2 and std == pytest.approx(0.0707, abs=1e-4)


def test_paired_summaries_use_the_seeds_both_tasks_have():
    records = label_rows([rec("br", "t", 0, 0.8), rec("br", "t", 1, 0.9), rec("br", "t-shuffled", 1, 0.7)])
    base, shuffled = paired_summaries(records, "t", "t-shuffled")
    assert base["br"]["micro_f1"][:1] == (0.9,) and shuffled["br"]["micro_f1"][2] == 1


def test_trim_series_uses_the_seeds_every_k_has():
    records = label_rows([rec("br", "t", 0, 0.9), rec("br", "t", 1, 0.8), rec("br", "t-trim5", 0, 0.6),
                          rec("br", "t-trim10", 0, 0.5), rec("br", "t-trim10", 1, 0.4), rec("br", "u-trim5", 0, 0.1)])
    assert trim_series(records, "t") == {"br": [(0, 0.9, 0.0), (5, 0.6, 0.0), (10, 0.5, 0.0)]}
    assert trim_seeds(records, "t", ["br"]) == {"br": [0]}


def test_filter_config_by_kind_and_digest():
    records = [rec("br", "t", 0, 0.8, "abc123", "defaults"), rec("br", "t", 0, 0.8, "def456", "tuned (study s)"),
               rec("br", "t", 0, 0.8, "0a0b0c", "--param C=1")]
    assert [r.config_digest for r in filter_config(records, "default")] == ["abc123"]
    assert [r.config_digest for r in filter_config(records, "tuned")] == ["def456"]
    assert [r.config_digest for r in filter_config(records, "0a0b")] == ["0a0b0c"]
    with pytest.raises(Exception, match="expected default, tuned"):
        filter_config(records, "not a digest!")
