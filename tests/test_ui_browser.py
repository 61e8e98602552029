"""The MLflow UI over an mlbench store, rendered by headless Chromium.

MLflow's run-comparison page fails in its Artifacts section ("Something went
wrong with this section") when the first run compared has artifacts and a later
one has none. mlbench used to log runs without artifacts (tuning trials, the
mean-over-seeds run), so comparing a tuned run with its trials broke the page;
now every run starts with its ``run.json``. The store-level test runs everywhere;
the browser test needs Chromium (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlbench.cli.main import main
from servers import wait_until_healthy
from test_ui import _descendants  # the process-table walk the ui tests already use

MLBENCH = shutil.which("mlbench") or str(Path(sys.executable).with_name("mlbench"))


def _chromium() -> str | None:
    """A Chromium that starts (a wrapper script without the browser behind it does not count)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            try:
                if subprocess.run([path, "--version"], capture_output=True, timeout=60).returncode == 0:
                    return path
            except (OSError, subprocess.TimeoutExpired):
                pass
    return None


CHROMIUM = _chromium()
BROKEN_SECTION = "Something went wrong"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two seeds of BR (and their mean-over-seeds run) and a 2-trial study, on the synthetic task."""
    root = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = Path.cwd()
    os.chdir(root)  # artifacts go to ./mlartifacts
    try:
        common = ["--method", "br", "--task", "synthetic", "--tracking-uri", uri, "-q"]
        assert main(["run", *common, "--seeds", "0", "1"]) == 0
        assert main(["run", *common, "--trials", "2"]) == 0
    finally:
        os.chdir(old)
    import mlflow

    client = mlflow.MlflowClient(uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "synthetic"]
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    return root, uri, client, exp.experiment_id, runs


@pytest.mark.slow
def test_every_kind_of_run_has_an_artifact(store):
    _, _, client, _, runs = store
    assert {"br-seed0", "br-seed1", "br-seeds0-1", "br-seed0-tuned", "trial-0", "trial-1"} <= set(runs)
    for name, run in runs.items():
        paths = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert "run.json" in paths, (name, paths)
    manifest = Path(client.download_artifacts(runs["trial-1"].info.run_id, "run.json", str(store[0])))
    import json

    body = json.loads(manifest.read_text())
    assert body["run_name"] == "trial-1"
    assert body["parent_run_id"] == runs["br-seed0-tuned"].info.run_id
    assert body["tags"]["mlflow.parentRunId"] == body["parent_run_id"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_text(url: str, profile: Path) -> str:
    """The text of a page once its scripts have run (Chromium's DOM dump, tags stripped)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--window-size=1600,1000", "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.sub(r"<style[^>]*>.*?</style>", " ", proc.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
@pytest.mark.slow
def test_the_ui_renders_runs_their_metrics_and_comparisons(store, tmp_path):
    root, uri, _, exp_id, runs = store
    port = _free_port()
    log = tmp_path / "ui.log"
    with open(log, "wb") as sink:  # a file, not a pipe: the server's children inherit it and nobody drains it
        ui = subprocess.Popen([MLBENCH, "ui", "--port", str(port), "--tracking-uri", uri], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=sink)
    profile = tmp_path / "chromium-profile"
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, ui, log.read_text)

        listing = _page_text(f"{base}/#/experiments/{exp_id}/runs", profile)
        for name in ("br-seed0", "br-seed1", "br-seeds0-1", "br-seed0-tuned"):
            assert name in listing, listing[-3000:]

        seed0 = runs["br-seed0"]
        page = _page_text(f"{base}/#/experiments/{exp_id}/runs/{seed0.info.run_id}", profile)
        assert "test_micro_f1" in page
        value = seed0.data.metrics["test_micro_f1"]
        assert any(f"{value:.{d}f}".rstrip("0") in page for d in (3, 4, 5)), page[-3000:]
        assert BROKEN_SECTION not in page

        # the tuned run first, then trials: the order that broke the Artifacts section
        ids = [runs[n].info.run_id for n in ("br-seed0-tuned", "trial-0", "trial-1")]
        compare = _page_text(f"{base}/#/compare-runs?runs=[{','.join(repr(i) for i in ids)}]"
                             f"&experiments=[{exp_id!r}]".replace("'", '"'), profile)
        assert "Artifacts" in compare and "trial-0" in compare and "trial-1" in compare, compare[-3000:]
        assert BROKEN_SECTION not in compare, compare[compare.find("Artifacts"):][:500]
        assert "run.json" in compare  # the artifact every run shares is listed
    finally:
        server = _descendants(ui.pid) if Path("/proc").is_dir() else set()  # the server runs in its own session
        ui.send_signal(signal.SIGTERM)  # mlbench ends the server's process group, then exits
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ui.kill()
        for pid in server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
