"""Plugins end to end, as an author meets them: an installed distribution, a local file, the omikuji example.

Everything goes through the real command line in a subprocess (a fresh interpreter reads the
entry-point metadata from ``sys.path``, exactly as after ``pip install``); nothing monkeypatches the
registry.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_PLUGIN = ROOT / "examples" / "minimal_plugin.py"
GUIDE = ROOT / "docs" / "writing-a-plugin.md"
OMIKUJI_EXAMPLE = ROOT / "examples" / "mlbench-omikuji"

# A dataset plugin: three splits of a tiny two-topic corpus, built with the core's helper.
DATASET_MODULE = '''
from mlbench.api import Dataset
from mlbench.data.build import Document, build_task


class TwoTopics(Dataset):
    name = "two-topics"
    description = "Two topics, each with its own words (a dataset from a plugin)"

    def load(self, data_dir=None, seed=0):
        words = {"sport": "goal match team score", "money": "bank rate stock market"}
        docs = []
        for i in range(120):
            labels = ("sport",) if i % 3 == 0 else ("money",) if i % 3 == 1 else ("sport", "money")
            text = " ".join(words[lab] for lab in labels) + f" filler{i % 7}"
            docs.append(Document(f"d{i}", text, labels))
        return build_task("two-topics", "two-topics", docs[:80], docs[80:100], docs[100:])
'''


def mlbench(*args: str, cwd: Path, path: Path | None = None, env: dict[str, str] | None = None):
    """Run the console entry point in a fresh interpreter; ``path`` is prepended to PYTHONPATH."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLBENCH_DISABLE_PLUGIN_AUTOLOAD"}
    full_env.update(env or {})
    if path is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), full_env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "mlbench.cli.main", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=600,
    )


def install_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """What ``pip install`` leaves in site-packages: the modules and a ``.dist-info`` with entry points."""
    info = site / f"{name.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for mod, src in modules.items():
        (site / f"{mod}.py").write_text(src)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with one installed third-party distribution declaring a method and a dataset."""
    site = tmp_path_factory.mktemp("site")
    install_distribution(
        site,
        "mlbench-ridge",
        "[mlbench.methods]\nridge = mlbench_ridge:Ridge\n\n[mlbench.tasks]\ntwo-topics = mlbench_two_topics:TwoTopics\n",
        {"mlbench_ridge": MINIMAL_PLUGIN.read_text(), "mlbench_two_topics": DATASET_MODULE},
    )
    return site


# ------------------------------------------------------------------- an installed distribution


def test_installed_distribution_is_listed_with_its_name(site, tmp_path):
    proc = mlbench("list", cwd=tmp_path, path=site)
    assert proc.returncode == 0, proc.stderr
    ridge = next(line for line in proc.stdout.splitlines() if line.strip().startswith("ridge "))
    assert "[mlbench-ridge]" in ridge and "Ridge regression" in ridge
    assert any(line.strip().startswith("two-topics ") and "[mlbench-ridge]" in line for line in proc.stdout.splitlines())
    assert "warning" not in proc.stderr


def test_installed_distribution_passes_the_contract(site, tmp_path):
    proc = mlbench("check", "ridge", cwd=tmp_path, path=site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from mlbench-ridge 0.3.1" in proc.stdout
    assert "FAIL" not in proc.stdout and "11 passed, 2 skipped, 0 failed" in proc.stdout


@pytest.mark.slow
def test_installed_distribution_runs_and_is_logged_to_mlflow(site, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = mlbench("run", "--method", "ridge", "--task", "synthetic", "--tracking-uri", uri, "-q", cwd=tmp_path, path=site)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^ridge\s+synthetic\s+0\s", proc.stdout, re.MULTILINE), proc.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("synthetic")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlbench.method") == "ridge"]
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "1.0" and run.data.metrics["test_micro_f1"] > 0.5


def test_dataset_from_a_distribution_runs_with_a_builtin_method(site, tmp_path):
    proc = mlbench("run", "--method", "br", "--task", "two-topics-shuffled", "--no-tracking", "-q", cwd=tmp_path, path=site)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^br\s+two-topics-shuffled\s+0\s", proc.stdout, re.MULTILINE), proc.stdout


def test_autoload_off_hides_the_distribution(site, tmp_path):
    env = {"MLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = mlbench("list", cwd=tmp_path, path=site, env=env)
    assert proc.returncode == 0 and "ridge" not in proc.stdout and "br " in proc.stdout
    proc = mlbench("check", "ridge", cwd=tmp_path, path=site, env=env)
    assert proc.returncode == 2 and "unknown method 'ridge'" in proc.stderr


# ----------------------------------------------------------------------------- local plugin files


def test_minimal_plugin_file_passes_check(tmp_path):
    proc = mlbench("check", "--plugin", str(MINIMAL_PLUGIN), "ridge", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"from plugin file {MINIMAL_PLUGIN}" in proc.stdout
    assert "11 passed, 2 skipped, 0 failed" in proc.stdout


def test_guide_shows_the_minimal_plugin_verbatim():
    """The guide's example is the tested file, character for character."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert MINIMAL_PLUGIN.read_text() in blocks


def test_dataset_plugin_file_for_list_data_run_and_check(tmp_path):
    ds = tmp_path / "two_topics.py"
    ds.write_text(DATASET_MODULE)
    proc = mlbench("list", "--plugin", str(ds), cwd=tmp_path)
    assert proc.returncode == 0 and f"[{ds}]" in proc.stdout
    proc = mlbench("data", "info", "two-topics-trim1", "--plugin", str(ds), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^labels\s+1$", proc.stdout, re.MULTILINE)
    proc = mlbench(
        "run", "--plugin", str(ds), "--plugin", str(MINIMAL_PLUGIN), "--method", "ridge", "--task", "two-topics",
        "--no-tracking", "-q", cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^ridge\s+two-topics\s+0\s", proc.stdout, re.MULTILINE), proc.stdout


def test_bad_plugin_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_library_here\n")
    proc = mlbench("check", "--plugin", str(broken), "br", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"mlbench: error: plugin file {broken} failed to import: ModuleNotFoundError: "
        "No module named 'no_such_library_here'"
    )
    clash = tmp_path / "clash.py"
    clash.write_text(MINIMAL_PLUGIN.read_text().replace('name = "ridge"', 'name = "br"'))
    proc = mlbench("check", "--plugin", str(clash), "br", cwd=tmp_path)
    assert proc.returncode == 0  # the built-in br was checked, and the file's br is named as ignored
    assert "checking method 'br' from mlbench-harness " in proc.stdout and "(built-in)" in proc.stdout
    assert f"from plugin file {clash} clashes with 'mlbench-harness'; ignoring the file's" in proc.stderr


# ------------------------------------------------------------------------------- omikuji example


def _omikuji_class(need_library: bool = True):
    if need_library:
        pytest.importorskip("omikuji", reason="the omikuji example needs `pip install omikuji` (a binary wheel)")
    if importlib.util.find_spec("mlbench_omikuji") is None:  # not installed: use the example's source
        sys.path.insert(0, str(OMIKUJI_EXAMPLE))
    from mlbench_omikuji import Omikuji  # imports omikuji itself only in fit

    return Omikuji


def test_omikuji_example_declares_its_entry_point():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    meta = tomllib.loads((OMIKUJI_EXAMPLE / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["mlbench.methods"] == {"omikuji": "mlbench_omikuji:Omikuji"}
    assert "omikuji>=0.5,<0.6" in meta["project"]["dependencies"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"omikuji>=0.5,<0.6"' in ci  # CI installs the same library the example pins


def test_omikuji_example_passes_the_contract():
    from mlbench.contract import run_contract
    from mlbench.data.synthetic import contract_tasks

    results = {r.name: r for r in run_contract(_omikuji_class(), contract_tasks())}
    failed = [f"{r.name}: {r.detail}" for r in results.values() if not r.passed]
    assert not failed, "\n".join(failed)
    det = results["deterministic under a seed"]
    assert det.skipped and "takes no seed" in det.detail  # declared, with the reason, never hidden
    assert not results["save/load round trip (if offered)"].skipped


def test_omikuji_data_file_handles_empty_documents_and_unlabelled_ones(tmp_path):
    import numpy as np
    import scipy.sparse as sp

    _omikuji_class()
    from mlbench_omikuji.method import write_xc_file

    X = sp.csr_matrix(np.array([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 1.0]], dtype=np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [0, 1], [0, 0]], dtype=np.int8))
    write_xc_file(tmp_path / "d.txt", X, Y)
    assert (tmp_path / "d.txt").read_text().splitlines() == ["3 3 2", "0 1:0.5", "1", " 0:0.25 2:1"]


def test_omikuji_min_labels_rule():
    import numpy as np

    m = _omikuji_class()(threshold=0.5, min_labels=1)
    scores = np.array([[0.9, 0.6, 0.0], [0.2, 0.3, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    # row 0: both above the threshold; row 1: none, so its best; row 2: nothing ranked, nothing predicted
    assert m.decide(scores).toarray().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert m.decide(scores).toarray().tolist() == _omikuji_class()(threshold=0.5).decide(scores).toarray().tolist()
    assert _omikuji_class()(threshold=0.5, min_labels=0).decide(scores).toarray().tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_omikuji_rejects_settings_that_would_abort_it():
    from mlbench.api import MlbenchError

    Omikuji = _omikuji_class(need_library=False)
    with pytest.raises(MlbenchError, match=r"min_branch_size \(2\) must be at least cluster_k \(4\)"):
        Omikuji(min_branch_size=2, cluster_k=4)
    with pytest.raises(MlbenchError, match="loss must be 'hinge' or 'log', got 'squared'; linear_c must be positive"):
        Omikuji(loss="squared", linear_c=0)


def test_omikuji_panic_is_a_one_line_error_not_an_abort(tmp_path):
    from mlbench.api import MlbenchError

    _omikuji_class()
    from mlbench_omikuji.method import _train_isolated

    data = tmp_path / "two.txt"
    data.write_text("2 2 2\n0 0:1\n1 1:1\n")
    # bypassing the method's checks: two labels cannot be clustered into four
    with pytest.raises(MlbenchError, match="omikuji training failed .*Rust panic"):
        _train_isolated(data, {"cluster_k": 4, "min_branch_size": 2}, 1, tmp_path / "model")


def test_a_plugin_file_has_one_code_digest_in_every_process(tmp_path):
    """The module a plugin file is imported as enters its code digest; it was named with Python's per-process
    string hash, so every process (a bench worker, a resumed command) saw another digest and reran its cells."""
    plugin = tmp_path / "my_br.py"
    plugin.write_text("from mlbench.methods.br import BinaryRelevance\n\n\n"
                      "class MyBR(BinaryRelevance):\n    name = 'my-br'\n")
    code = ("import sys; from mlbench.registry import get_method, load_plugin_file; "
            "from mlbench.runs.identity import method_code_digest; "
            f"load_plugin_file({str(plugin)!r}); print(method_code_digest(get_method('my-br')))")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2", "3")}
    assert len(digests) == 1 and len(digests.pop()) == 12
