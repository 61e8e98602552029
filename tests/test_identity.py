"""Run identity: configuration digests, code digests over the import closure, labels."""

from __future__ import annotations

from mlbench.runs import identity
from mlbench.runs.identity import config_digest, config_label, identity_tags, import_closure


def test_code_closure_follows_project_imports_only():
    br = import_closure("mlbench.methods.br")
    assert "mlbench.methods.linear" in br and "mlbench.api" in br
    assert not any(name.startswith("mlbench.methods.neural") for name in br)
    assert not any(not name.startswith("mlbench") for name in br)  # numpy, sklearn... are versions, not code
    seq = import_closure("mlbench.methods.seq2seq")
    assert {"mlbench.methods.neural.method", "mlbench.methods.neural.sgm", "mlbench.methods.neural.train"} <= set(seq)


def test_a_module_moves_the_digests_of_the_methods_that_run_it_only():
    """A change to BR/PCC's LIBLINEAR solver (its tolerance, its threads) must not stale the rows of the methods
    that never call it (the classics: LinearSVC, ML-kNN), and a change to the TF-IDF settings must not stale the
    neural methods, which import the featurisation module for feature tasks."""
    for module in ("mlbench.methods.labelpowerset", "mlbench.methods.rakel", "mlbench.methods.mlknn",
                   "mlbench.methods.classics"):
        closure = import_closure(module)
        assert "mlbench.methods.tfidf" in closure and "mlbench.methods.linear" not in closure, module
    assert {"mlbench.methods.linear", "mlbench.methods.tfidf"} <= set(import_closure("mlbench.methods.pcc"))
    for module in ("mlbench.methods.xml_cnn", "mlbench.methods.cnn_rnn", "mlbench.methods.seq2set",
                   "mlbench.methods.sgm_minilm", "mlbench.methods.minilm"):
        closure = import_closure(module)
        assert "mlbench.methods.linear" not in closure and "mlbench.methods.tfidf" not in closure, module


def test_code_digest_changes_with_a_module_of_the_closure(tmp_path, monkeypatch):
    import sys

    # a plugin module outside mlbench: its own source counts, plus mlbench's closure of what it imports
    (tmp_path / "plug_a.py").write_text("from mlbench.methods import linear\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    identity.code_digest.cache_clear()
    first = identity.code_digest("plug_a")
    assert "mlbench.methods.linear" in import_closure("plug_a")
    (tmp_path / "plug_a.py").write_text("from mlbench.methods import linear\nX = 2\n")
    sys.modules.pop("plug_a", None)
    identity.code_digest.cache_clear()
    assert identity.code_digest("plug_a") != first


def test_config_digest_and_labels():
    from mlbench.methods.br import BinaryRelevance as BR

    a = BR(preset="small").params
    b = BR(preset="small", C=10).params
    assert config_digest("br", a, "small") != config_digest("br", b, "small")
    assert config_digest("br", a, "small") != config_digest("br", a, "paper")
    assert config_digest("br", dict(reversed(list(a.items()))), "small") == config_digest("br", a, "small")
    assert config_label({}) == "defaults" and config_label({"C": 10}) == "--param C=10"
    assert config_label({}, suite="paper-reuters") == "suite paper-reuters"
    assert config_label({"C": 10}, study="s1") == "tuned (study s1)"
    # a parameter holding another run's model (a temporary path) does not split the configuration
    one = identity_tags(BR, {**a, "init_from": "/tmp/x1"}, "small", model_references=("init_from",))
    two = identity_tags(BR, {**a, "init_from": "/tmp/x2"}, "small", model_references=("init_from",))
    assert one["config_digest"] == two["config_digest"] and len(one["code_digest"]) == 12
