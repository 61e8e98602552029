"""Entry-point discovery, plugin files, broken plugins and task-name parsing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlbench import registry
from mlbench.api import MlbenchError
from mlbench.api import UnknownNameError

PLUGIN_MODULE = '''
from mlbench.api import Method
from mlbench.methods.br import BinaryRelevance


class EchoBR(BinaryRelevance):
    name = "echo-br"
    description = "BR under another name, from a third-party distribution"
'''


def _install_fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """Write a real ``.dist-info`` with entry points: what ``pip install`` leaves behind."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for mod, src in modules.items():
        (root / f"{mod}.py").write_text(src)


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    _install_fake_distribution(
        tmp_path,
        "mlbench_echo",
        "[mlbench.methods]\necho-br = mlbench_echo_mod:EchoBR\n",
        {"mlbench_echo_mod": PLUGIN_MODULE},
    )
    _install_fake_distribution(
        tmp_path,
        "mlbench_broken",
        "[mlbench.methods]\nbroken = mlbench_broken_mod:Nope\nbr = mlbench_broken_mod:Nope\n",
        {"mlbench_broken_mod": "raise ImportError('this plugin needs a library that is not installed')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_come_through_entry_points():
    names = registry.method_names()
    assert "br" in names
    found, _ = registry.entries(registry.METHOD_GROUP)
    assert found["br"].source == registry.BUILTIN_DIST and found["br"].entry_point is not None
    assert {"reuters", "rcv1", "synthetic"} <= set(registry.dataset_names())


def test_third_party_plugin_is_listed_and_usable(fake_plugins):
    assert "echo-br" in registry.method_names()
    cls = registry.get_method("echo-br")
    assert cls.name == "echo-br"
    rows, warnings = registry.describe_all()
    row = next(r for r in rows if r.name == "echo-br")
    assert row.status == "ok" and row.source == "mlbench_echo"


def test_broken_plugin_is_a_warning_row_and_clash_is_named(fake_plugins):
    rows, warnings = registry.describe_all()
    broken = next(r for r in rows if r.name == "broken")
    assert broken.status.startswith("WARNING") and "not installed" in broken.status
    # the built-in keeps its name; the clashing distribution is named in a warning
    assert next(r for r in rows if r.name == "br").source == registry.BUILTIN_DIST
    assert any("mlbench_broken" in w and "'br'" in w for w in warnings)
    with pytest.raises(MlbenchError, match="mlbench_broken"):
        registry.get_method("broken")


BAD_CLASSES_MODULE = """
import sys

from mlbench.api import Method


class NotAMethod:
    name = "not-a-method"


class Abstract(Method):
    name = "abstract"
    description = "forgot fit and predict"


class Misnamed(Method):
    name = "something-else"
    description = "entry point and class disagree"

    def fit(self, train, valid, ctx):
        return self

    def predict(self, split):
        raise NotImplementedError
"""


@pytest.fixture
def bad_plugins(tmp_path, monkeypatch):
    _install_fake_distribution(
        tmp_path,
        "mlbench_bad",
        "[mlbench.methods]\n"
        "not-a-method = mlbench_bad_mod:NotAMethod\n"
        "abstract = mlbench_bad_mod:Abstract\n"
        "misnamed = mlbench_bad_mod:Misnamed\n"
        "exits = mlbench_exits_mod:X\n",
        {"mlbench_bad_mod": BAD_CLASSES_MODULE, "mlbench_exits_mod": "raise SystemExit('plugin called exit()')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not-a-method", "mlbench_bad_mod:NotAMethod is not a subclass of mlbench.api.Method"),
        ("abstract", "mlbench_bad_mod:Abstract does not implement fit, predict"),
        ("misnamed", "declares name 'something-else', not the entry point's 'misnamed'"),
        ("exits", "failed to load: SystemExit: plugin called exit()"),
    ],
)
def test_bad_plugin_classes_are_named_errors(bad_plugins, name, message):
    with pytest.raises(MlbenchError) as err:
        registry.get_method(name)
    text = str(err.value)
    assert message in text
    assert "distribution 'mlbench_bad'" in text and f"entry point '{name} = " in text
    rows, _ = registry.describe_all()
    row = next(r for r in rows if r.name == name)
    assert row.status.startswith("WARNING") and message in row.status
    assert registry.get_method("br").name == "br"  # built-ins unaffected


def test_clash_is_logged_when_a_name_is_used(fake_plugins, caplog, monkeypatch):
    monkeypatch.setattr(registry, "_warned", set())
    with caplog.at_level("WARNING", logger="mlbench.registry"):
        assert registry.get_method("br").__module__ == "mlbench.methods.br"
        registry.get_method("br")
    clash = [r.getMessage() for r in caplog.records if "clashes" in r.getMessage()]
    assert len(clash) == 1  # once per process, not per lookup
    assert "distribution 'mlbench_broken' (entry point 'br = mlbench_broken_mod:Nope')" in clash[0]


def test_method_origin_names_distribution_and_version(fake_plugins):
    assert registry.method_origin("echo-br") == "mlbench_echo 0.1"
    assert registry.method_origin("br").endswith("(built-in)")


def _cli(args: list[str], cwd: Path, extra_path: Path | None = None, env: dict | None = None):
    import os

    full_env = {**os.environ, **(env or {})}
    if extra_path is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), full_env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "mlbench.cli.main", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_list_survives_broken_plugins_through_the_cli(fake_plugins, bad_plugins, tmp_path):
    proc = _cli(["list"], cwd=tmp_path, extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "br " in proc.stdout and "echo-br" in proc.stdout and "[mlbench_echo]" in proc.stdout
    broken = next(line for line in proc.stdout.splitlines() if line.strip().startswith("broken "))
    assert "WARNING" in broken and "not installed" in broken and "[mlbench_broken]" in broken
    assert "clashes with distribution 'mlbench-harness'" in proc.stderr
    # and with autoload off, only built-ins, no warning
    quiet = _cli(["list"], cwd=tmp_path, extra_path=tmp_path, env={"MLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert quiet.returncode == 0 and "echo-br" not in quiet.stdout and "broken" not in quiet.stdout
    assert "warning" not in quiet.stderr


def test_autoload_can_be_disabled(fake_plugins, monkeypatch):
    monkeypatch.setenv("MLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "echo-br" not in registry.method_names()
    assert "br" in registry.method_names()


def test_plugin_file(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_local", {registry.METHOD_GROUP: {}, registry.TASK_GROUP: {}})
    f = tmp_path / "my_method.py"
    f.write_text(PLUGIN_MODULE.replace("echo-br", "file-br"))
    assert registry.load_plugin_file(f) == ["file-br"]
    assert registry.get_method("file-br").name == "file-br"
    empty = tmp_path / "nothing.py"
    empty.write_text("x = 1\n")
    with pytest.raises(MlbenchError, match="defines no Method"):
        registry.load_plugin_file(empty)
    with pytest.raises(MlbenchError, match="does not exist"):
        registry.load_plugin_file(tmp_path / "missing.py")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="available: .*br"):
        registry.get_method("no-such-method")


def test_list_does_not_import_torch():
    code = (
        "import sys; from mlbench.cli.main import main; main(['list']); "
        "assert 'torch' not in sys.modules, 'torch imported'; assert 'mlflow' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "br " in proc.stdout and "reuters" in proc.stdout


@pytest.fixture
def rival_plugins(tmp_path, monkeypatch):
    """Two third-party distributions that both declare the method name ``twin``."""
    for dist in ("mlbench_zeta", "mlbench_alpha"):
        _install_fake_distribution(
            tmp_path / dist,
            dist,
            f"[mlbench.methods]\ntwin = {dist}_mod:Twin\n",
            {f"{dist}_mod": PLUGIN_MODULE.replace("class EchoBR", "class Twin").replace('"echo-br"', '"twin"')},
        )
        monkeypatch.syspath_prepend(str(tmp_path / dist))
    monkeypatch.delenv(registry.PREFER_ENV, raising=False)
    return tmp_path


def test_two_distributions_declaring_one_name_is_an_error_naming_both(rival_plugins):
    with pytest.raises(MlbenchError) as info:
        registry.get_method("twin")
    message = str(info.value)
    # sorted by name, whatever the install (sys.path) order
    assert "'twin' is declared by distributions 'mlbench_alpha', 'mlbench_zeta'" in message
    assert f"{registry.PREFER_ENV}=mlbench_alpha" in message
    row = next(r for r in registry.describe_all()[0] if r.name == "twin")
    assert row.status.startswith("WARNING") and "mlbench_zeta" in row.status
    assert registry.get_method("br").name == "br"  # the other names are untouched


def test_a_preferred_distribution_wins_a_clash_with_a_warning(rival_plugins, monkeypatch, caplog):
    monkeypatch.setenv(registry.PREFER_ENV, "mlbench_zeta")
    monkeypatch.setattr(registry, "_warned", set())
    with caplog.at_level("WARNING", logger="mlbench.registry"):
        assert registry.get_method("twin").__module__ == "mlbench_zeta_mod"
    assert any("ignoring 'mlbench_alpha'" in r.getMessage() for r in caplog.records)


def test_a_clash_warning_appears_only_when_its_name_is_used(fake_plugins, caplog, monkeypatch):
    monkeypatch.setattr(registry, "_warned", set())
    with caplog.at_level("WARNING", logger="mlbench.registry"):
        registry.get_method("pcc")  # mlbench_broken's clash is about br
    assert not [r for r in caplog.records if "clashes" in r.getMessage()]
