"""Parameter declarations: every method's types and ranges, checked before any data is read."""

from __future__ import annotations

import math

import pytest

from mlbench.api import Method, Param, UsageError, validate_params
from mlbench.contract import Skip, param_declaration_problem
from mlbench.registry import get_method, method_names


@pytest.mark.parametrize("name", method_names())
def test_every_builtin_declares_every_default(name):
    cls = get_method(name)
    assert set(cls.param_specs) == set(cls.defaults)
    assert param_declaration_problem(cls) == ""
    for preset in cls.presets:
        assert validate_params(cls, preset, {}) == {**cls.defaults, **cls.presets[preset]}


@pytest.mark.parametrize(
    "spec, good, bad, described",
    [
        (Param("float", low=0, low_open=True), [1e-9, 3, 300.0], [0, -1, "abc", math.inf, math.nan, True, None], "a number > 0"),
        (Param("int", low=1, none_ok=True), [1, 7, None], [0, 1.5, "2", False], "an integer >= 1 or null"),
        (Param("float", low=0, high=1, low_open=True, high_open=True, also=("valid",)), [0.5, "valid"], [0, 1, "x"],
         'a number in (0, 1) or "valid"'),
        (Param("choice", choices=("f1", "mix")), ["f1", "mix"], ["bleu", 1, None], 'one of "f1", "mix"'),
        (Param("bool"), [True, False], [1, 0, "yes"], "true or false"),
        (Param("int_list", low=1), [[2, 4], (1,)], [[], [0], [1.5], 3], "a non-empty list of integers >= 1"),
        (Param("str", none_ok=True), ["a", None], [3], "a string or null"),
    ],
)
def test_param_accepts_and_describes(spec, good, bad, described):
    assert all(spec.accepts(v) for v in good)
    assert not any(spec.accepts(v) for v in bad)
    assert spec.describe() == described


@pytest.mark.parametrize(
    "method, params, message",
    [
        ("br", {"C": -1}, "method 'br': C=-1 (--param) is not allowed; C must be a number > 0"),
        ("br", {"C": "abc"}, 'C="abc"'),
        ("br", {"C": math.inf}, "C=inf"),
        ("br", {"nonsense": 1}, "method 'br' has no parameter nonsense"),
        ("pcc", {"beam_width": 0}, "beam_width must be an integer >= 1"),
        ("xml-cnn", {"dropout": 1.0}, "dropout must be a number in [0, 1)"),
        ("seq2set", {"reward": "bleu"}, 'reward must be one of "f1", "hamming", "mix"'),
    ],
)
def test_validate_params_names_parameter_value_and_range(method, params, message):
    with pytest.raises(UsageError) as info:
        validate_params(get_method(method), "small", params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_preset_value_is_named_as_the_preset():
    class Bad(Method):
        name = "bad"
        defaults = {"k": 1}
        param_specs = {"k": Param("int", low=1)}
        presets = {"small": {"k": 0}, "paper": {}}

        def fit(self, train, valid, ctx):
            return self

        def predict(self, split):
            raise NotImplementedError

    assert "k=0 (preset 'small')" in param_declaration_problem(Bad)
    with pytest.raises(UsageError, match=r"k=0 \(preset 'small'\)"):
        validate_params(Bad, "small", {})


def test_declaration_must_cover_every_default_and_is_optional():
    class Partial(Method):
        name = "partial"
        defaults = {"a": 1, "b": 2}
        param_specs = {"a": Param("int")}

        def fit(self, train, valid, ctx):
            return self

        def predict(self, split):
            raise NotImplementedError

    assert param_declaration_problem(Partial) == "param_specs does not declare b"

    class Undeclared(Partial):
        param_specs = {}

    with pytest.raises(Skip):
        param_declaration_problem(Undeclared)
    # without a declaration only the names are checked: any value passes until fit time
    assert validate_params(Undeclared, "small", {"a": "anything"})["a"] == "anything"
