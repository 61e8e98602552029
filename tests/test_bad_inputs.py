"""Bad input, tried as a new user would and as an attacker would, through the real ``mlbench`` command.

Every case must end in exactly one ``mlbench: error:`` line, no traceback, the documented exit status
(2: the command line or a suite is wrong; 1: data or the store is), and before any data is loaded or
any store opened. Two things show the last part: the data home is an empty folder, so reading any
corpus would end in a different error (``rcv1``: no copy) or a download; and the tracking store's file
must not exist afterwards. A time bound catches anything slow that slips through.

Families beyond the command line (issue 32, "untrusted inputs stay outside"): report bundles tampered
field by field and link by link, with a canary file outside the bundle that must not be opened, read or
written (Linux: inotify says whether anything opened it); a Ctrl-C at several moments of the creation of
a fresh MLflow or Optuna store, then a rerun that must succeed; plugins that exit or raise anything at
import; secrets in URIs spelt so that no pattern finds them; suites, stores and bundles that would take
unbounded time or memory.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

MLBENCH = shutil.which("mlbench") or str(Path(sys.executable).with_name("mlbench"))
#: Seconds a case may take: the interpreter and the registry, never a corpus (generous for a loaded CI machine).
TIME_BOUND_S = 30.0
RUN_ID = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    status: int
    says: str  # a part of the error line
    opens_store: bool = False  # the case must look something up in the store (compare with real-looking ids)
    hides: tuple[str, ...] = ()  # secrets that must appear nowhere in the output


def case(args: str, status: int, says: str, **kw) -> Case:
    return Case(tuple(args.split()), status, says, **kw)


RUN = "run --method br --task rcv1 --no-tracking"
#: A password no pattern of "user:password@" finds: it holds a "/", which ends a URL's authority for urllib
#: but not for SQLAlchemy, whose driver reads everything up to the "@" as the password.
SLASHED = "s3cr/et-pw"
PG = f"postgresql+psycopg2://bob:{SLASHED}@127.0.0.1:9/db"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: ``ui`` checks its port before its store: a port nobody holds (chosen when the case runs) meets the store.
UI = "ui --port {port}"
CASES = [
    # hyperparameters: named, with the value and what is allowed
    case(f"{RUN} --param C=-1", 2, "C=-1 (--param) is not allowed; C must be a number > 0"),
    case(f"{RUN} --param C=abc", 2, 'C="abc"'),
    case(f"{RUN} --param C=1e999", 2, "C=inf"),
    case(f"{RUN} --param C=nan", 2, 'C="nan"'),
    case(f"{RUN} --param C=true", 2, "C=true"),
    case(f"{RUN} --param nonsense=1", 2, "method 'br' has no parameter nonsense"),
    case(f"{RUN} --param C", 2, "--param expects key=value"),
    case(f"{RUN} --param =3", 2, "--param expects key=value"),
    case(f"{RUN} --param threshold=1.5", 2, "threshold must be a number in (0, 1)"),
    case(f"{RUN} --param class_weight=weird", 2, 'class_weight must be one of "balanced" or null'),
    case(f"{RUN} --param max_ngram=0", 2, "max_ngram must be an integer >= 1"),
    case(f"{RUN} --param max_ngram=1.5", 2, "max_ngram=1.5"),
    case(f"{RUN} --param sublinear_tf=yes", 2, "sublinear_tf must be true or false"),
    case("run --method pcc --task rcv1 --no-tracking --param beam_width=0", 2, "beam_width must be an integer >= 1"),
    case("run --method xml-cnn --task rcv1 --no-tracking --param dropout=1", 2, "dropout must be a number in [0, 1)"),
    case("run --method xml-cnn --task rcv1 --no-tracking --param windows=[]", 2, "windows must be a non-empty list"),
    case("run --method xml-cnn --task rcv1 --no-tracking --param pooling=mean", 2, 'pooling must be one of "document"'),
    case("run --method seq2set --task rcv1 --no-tracking --param reward=bleu", 2, "reward must be one of"),
    case("run --method seq2seq --task rcv1 --no-tracking --param lr=0", 2, "lr must be a number > 0"),
    case("run --method cnn-rnn --task rcv1 --no-tracking --param epochs=-3", 2, "epochs must be an integer >= 1"),
    # seeds and options
    case(f"{RUN} --seeds -1", 2, "--seeds: -1 is not a seed"),
    case(f"{RUN} --seeds 0 0", 2, "--seeds lists a seed twice"),
    case(f"{RUN} --seeds abc", 2, "argument --seeds: invalid int value: 'abc'"),
    case(f"{RUN} --preset huge", 2, "argument --preset: invalid choice: 'huge'"),
    case(f"{RUN} --trials 0", 2, "--trials must be at least 1"),
    case(f"{RUN} --n-jobs 2", 2, "--n-jobs only apply when tuning"),
    case(f"{RUN} --trials 2 --n-jobs 0", 2, "--n-jobs must be at least 1"),
    case(f"{RUN} --trials 2 --timeout -1", 2, "--timeout must be positive"),
    case("run --task rcv1", 2, "the following arguments are required: --method/-m"),
    # names
    case("run --method nope --task rcv1 --no-tracking", 2, "unknown method 'nope'; available: br"),
    case("run --method br --task nope --no-tracking", 2, "unknown task 'nope'; datasets: bibtex, corel5k, delicious, emotions, enron, genbase, mediamill, medical, rcv1, reuters"),
    case("run --method br --task rcv1-trim-5 --no-tracking", 2, "malformed variant 'trim-5'"),
    case("run --method br --task rcv1-trim0 --no-tracking", 2, "trim0 trims nothing"),
    case("run --method br --task rcv1-trim05 --no-tracking", 2, "write trim05 as trim5"),
    case("run --method br --task rcv1-shuffled-shuffled --no-tracking", 2, "shuffled and shuffled are both given"),
    case("run --method br --task rcv1-trim10-trim5 --no-tracking", 2, "trim10 and trim5 are both given"),
    case("run --method br --task rcv1-foo --no-tracking", 2, "unknown task variant 'foo'"),
    case("run --method br --task rcv1- --no-tracking", 2, "unknown task variant ''"),
    # files
    case(f"{RUN} --data-dir {{file}}", 2, "is a file, not a folder"),
    case(f"{RUN} --plugin {{tmp}}/missing.py", 2, "missing.py does not exist"),
    case(f"{RUN} --plugin {{broken}}", 1, "failed to import: RuntimeError: broken on purpose"),
    # check, data
    case("check nope", 2, "unknown method 'nope'"),
    case("check br --param C=-1", 2, "C must be a number > 0"),
    case("data info nope", 2, "unknown task 'nope'"),
    case("data info rcv1-trim0", 2, "trim0 trims nothing"),
    case("data fetch rcv1 --data-dir {file}", 2, "is a file, not a folder"),
    case("data bogus rcv1", 2, "argument action: invalid choice: 'bogus'"),
    # bench: the whole suite before any store or data
    case("bench no-such-suite", 2, "unknown suite 'no-such-suite'"),
    case("bench {tmp}/syntax.yaml", 2, "is not valid YAML: line 3, column 6"),
    case("bench {tmp}/unknown_method.yaml", 2, "unknown method 'nope'"),
    case("bench {tmp}/bad_param.yaml", 2, "C=-1 (in the suite) is not allowed"),
    case("bench {tmp}/bad_task.yaml", 2, "trim10 and trim5 are both given"),
    case("bench {tmp}/bad_seeds.yaml", 2, "'seeds' must be a list of integers"),
    case("bench linear-reuters --seeds -1", 2, "seed -1 is not in"),
    case("bench linear-reuters --methods br nope", 2, "unknown method 'nope'"),
    # compare, ui, the command itself
    case("compare abc def", 2, "'abc' is not an MLflow run id"),
    case(f"compare , {RUN_ID}", 2, "no run id in ','"),
    case(f"compare {RUN_ID} {RUN_ID}", 1, f"no run '{RUN_ID}'", opens_store=True),
    case("ui --port 0", 2, "--port must be in 1-65535"),
    case("frobnicate", 2, "argument COMMAND: invalid choice: 'frobnicate'"),
    case("", 2, "the following arguments are required: COMMAND"),
    # plugins that exit or raise anything while being imported: an error, never a silent exit 0
    case(f"{RUN} --plugin {{tmp}}/exit0.py", 1, "exit0.py failed to import: SystemExit: 0"),
    case(f"{RUN} --plugin {{tmp}}/exit_text.py", 1, "failed to import: SystemExit: bye"),
    case(f"{RUN} --plugin {{tmp}}/base_exception.py", 1, "failed to import: Odd: raised at import"),
    case("check br --plugin {tmp}/exit0.py", 1, "exit0.py failed to import: SystemExit: 0"),
    case("check br --plugin {tmp}/exit_text.py", 1, "failed to import: SystemExit: bye"),
    # stores: a URI that cannot be a database fails in seconds; a password is masked however it is spelt
    case(f"compare {RUN_ID} {RUN_ID} --tracking-uri sqlite:///{{tmp}}", 2, "is a folder, not a database file"),
    case(f"compare {RUN_ID} {RUN_ID} --tracking-uri sqlite:///{{file}}", 1, "is not a SQLite database"),
    case(f"compare {RUN_ID} {RUN_ID} --tracking-uri sqlite:///{{file}}/mlflow.db", 1, "tracking store sqlite:///"),
    case(f"compare {RUN_ID} {RUN_ID} --tracking-uri {PG}", 1, "postgresql+psycopg2://***@127.0.0.1:9/db",
         hides=(SLASHED, "s3cr")),
    case(f"{UI} --tracking-uri sqlite:///{{tmp}}", 2, "is a folder, not a database file"),
    case(f"{UI} --tracking-uri sqlite:///{{file}}/mlflow.db", 1, "tracking store sqlite:///"),
    case(f"{UI} --tracking-uri {PG.replace(SLASHED, 's3cr%2Fet-pw')}", 1, "postgresql+psycopg2://***@127.0.0.1:9/db",
         hides=("s3cr",)),
    case(f"{RUN} --trials 1 --storage {{tmp}}", 2, "is a folder; give a journal file path"),
    case(f"{RUN} --trials 1 --storage {{tmp}}/no-folder/x.journal", 2, "no-folder does not exist"),
    case(f"{RUN} --trials 1 --storage {{tmp}}/damaged.journal", 1, "damaged.journal: line 2 is not a journal record"),
    case(f"{RUN} --trials 1 --storage sqlite:///{{tmp}}", 2, "is a folder, not a database file"),
    case(f"{RUN} --trials 1 --storage sqlite:///{{file}}", 1, "is not a SQLite database"),
    # suites: bounded YAML, bounded matrices, references checked as usage errors, --dry-run refused alike
    case("bench {tmp}/alias_bomb.yaml", 2, "expands to more than 100,000 values (YAML aliases)"),
    case("bench {tmp}/self_alias.yaml", 2, "contains itself"),
    case("bench {tmp}/deep.yaml", 2, "nests too deeply to be a suite"),
    case("bench {tmp}/huge.yaml", 2, "is larger than 256 KiB"),
    case("bench {tmp}/many_seeds.yaml", 2, "1,001 seeds; at most 1,000 are allowed"),
    case("bench {tmp}/many_cells.yaml --dry-run", 2, "cells; at most 20,000 are allowed"),
    case("bench {tmp}/repeated_seed.yaml", 2, "lists seed 0 twice"),
    case("bench {tmp}/repeated_task.yaml --dry-run", 2, "lists task 'rcv1' twice"),
    case("bench linear-reuters --seeds 0 1 0 --dry-run", 2, "lists seed 0 twice"),
    case("bench {tmp}/reference_cycle.yaml", 2, "seq2set must be listed before seq2seq"),
    case("bench {tmp}/reference_missing.yaml", 2, "'@nope' names no method of the suite"),
    # values that pass one by one but not together: the method's own check, before any cell runs
    case("bench {tmp}/padded_without_length.yaml --dry-run", 2,
         "method 'xml-cnn': pooling='padded' pads every document to max_len, which must then be set"),
    case("bench {tmp}/reference_self.yaml --dry-run", 2, "seq2set must be listed before seq2set"),
    case("bench {tmp}/nested_methods.yaml", 2, "'methods' must be a list of names"),
    case("bench {tmp}/bomb_seeds_message.yaml", 2, "'seeds' must be a list of integers, got ["),
    # reports: resamples bounded on the command line as in a bundle
    case("report --task rcv1 --resamples 0", 2, "--resamples must be in [1, 10,000]"),
    case("report --task rcv1 --resamples 1000000000", 2, "--resamples must be in [1, 10,000]"),
]

SUITES = {
    "syntax.yaml": "name: x\nmethods: [br\ntasks: [rcv1]\n",
    "unknown_method.yaml": "methods: [br, nope]\ntasks: [rcv1]\n",
    "bad_param.yaml": "methods: {br: {C: -1}}\ntasks: [rcv1]\n",
    "bad_task.yaml": "methods: [br]\ntasks: [rcv1, rcv1-trim10-trim5]\n",
    "bad_seeds.yaml": "methods: [br]\ntasks: [rcv1]\nseeds: [zero]\n",
    # a few hundred bytes that stand for 9**8 values once the aliases are expanded (the "billion laughs")
    "alias_bomb.yaml": "".join(f"{a}: &{a} [" + ",".join([f"*{p}" if p != "-" else "x"] * 9) + "]\n"
                               for p, a in zip("-abcdefg", "abcdefgh")) + "methods: [br]\ntasks: [rcv1]\nseeds: *h\n",
    "self_alias.yaml": "methods: [br]\ntasks: [rcv1]\nseeds: &s [0, *s]\n",
    "deep.yaml": "methods: [br]\ntasks: [rcv1]\nseeds: " + "[" * 5000 + "]" * 5000 + "\n",
    "huge.yaml": "methods: [br]\ntasks: [rcv1]\n" + "# padding\n" * 30000,
    "many_seeds.yaml": "methods: [br]\ntasks: [rcv1]\nseeds: [" + ", ".join(map(str, range(1001))) + "]\n",
    "many_cells.yaml": ("methods: [br, pcc]\ntasks: [" + ", ".join(f"rcv1-trim{k}" for k in range(1, 102))
                        + "]\nseeds: [" + ", ".join(map(str, range(100))) + "]\n"),
    "repeated_seed.yaml": "methods: [br]\ntasks: [rcv1]\nseeds: [0, 1, 0]\n",
    "padded_without_length.yaml": "methods: {xml-cnn: {pooling: padded, max_len: null}}\ntasks: [rcv1]\n",
    "repeated_task.yaml": "methods: [br]\ntasks: [rcv1, rcv1]\n",
    "reference_cycle.yaml": "methods:\n  seq2seq: {init_from: '@seq2set'}\n  seq2set: {init_from: '@seq2seq'}\ntasks: [rcv1]\n",
    "reference_missing.yaml": "methods:\n  seq2set: {init_from: '@nope'}\ntasks: [rcv1]\n",
    "reference_self.yaml": "methods:\n  seq2set: {init_from: '@seq2set'}\ntasks: [rcv1]\n",
    "nested_methods.yaml": "methods: [[br]]\ntasks: [rcv1]\n",
    # a bad value that is itself huge once expanded: the message shows a line of it, not all of it
    "bomb_seeds_message.yaml": ("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nmethods: [br]\ntasks: [rcv1]\nseeds: *c\n"),
}
#: Plugin files that end their import in other ways than an Exception.
PLUGIN_FILES = {
    "exit0.py": "import sys\nsys.exit(0)\n",
    "exit_text.py": "raise SystemExit('bye')\n",
    "base_exception.py": "class Odd(BaseException):\n    pass\n\n\nraise Odd('raised at import')\n",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    (tmp / "data").mkdir()  # an empty data home: loading any corpus would fail differently
    (tmp / "a-file").write_text("not a folder\n")
    (tmp / "broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    for name, text in {**SUITES, **PLUGIN_FILES}.items():
        (tmp / name).write_text(text)
    (tmp / "damaged.journal").write_text('{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'
                                         'not a record\n')
    return tmp


def _run(c: Case, tmp: Path, index: int) -> tuple[subprocess.CompletedProcess, float, Path]:
    store = tmp / f"store-{index}.db"
    args = [a.format(tmp=tmp, file=tmp / "a-file", broken=tmp / "broken.py", port=_free_port()) for a in c.args]
    if args and args[0] in ("bench", "compare", "ui", "report") and "--tracking-uri" not in args:
        args += ["--tracking-uri", f"sqlite:///{store}"]
    env = {**os.environ, "MLBENCH_DATA": str(tmp / "data"), "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
           "XDG_CACHE_HOME": str(tmp / "cache"), "MLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    start = time.monotonic()
    proc = subprocess.run([MLBENCH, *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=TIME_BOUND_S * 4, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - start, store


@pytest.fixture(scope="module")
def outcomes(sandbox):
    # the cases are independent processes: run them side by side to keep the file fast
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda ic: _run(ic[1], sandbox, ic[0]), enumerate(CASES)))


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 90
    assert len({c.args for c in CASES}) == len(CASES)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[" ".join(c.args) or "(no command)" for c in CASES])
def test_bad_input_is_one_line_before_any_work(outcomes, index):
    c = CASES[index]
    proc, elapsed, store = outcomes[index]
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert [ln for ln in err_lines if ln.startswith("mlbench: error:")] == err_lines[-1:], proc.stderr
    assert len(err_lines) == 1, proc.stderr
    assert c.says in err_lines[0]
    assert proc.returncode == c.status, proc.stderr
    assert elapsed < TIME_BOUND_S
    for secret in c.hides:
        assert secret not in proc.stdout + proc.stderr
    if not c.opens_store:
        assert not store.exists(), "the tracking store was opened before the input was checked"


def test_list_shows_a_broken_plugin_file_as_a_warning_row(sandbox):
    proc = subprocess.run([MLBENCH, "list", "--plugin", str(sandbox / "broken.py")], cwd=sandbox,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("broken.py"))
    assert "WARNING: plugin file" in row and "RuntimeError: broken on purpose" in row and "[plugin file]" in row
    assert "br " in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches the process's memory map in /proc")
def test_ctrl_c_while_loading_is_one_line(sandbox):
    # SIGINT while mlbench imports its libraries: as soon as NumPy's extension is mapped (mlbench.api's
    # imports), long before any command runs. Earlier lies the interpreter's own start-up.
    proc = subprocess.Popen([MLBENCH, "run", "--method", "br", "--task", "synthetic", "--no-tracking", "-q"],
                            cwd=sandbox, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while maps.exists() and "_multiarray_umath" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "mlbench: interrupted"
    assert proc.returncode == 130


@pytest.mark.parametrize("plugin", sorted(PLUGIN_FILES))
def test_list_shows_a_plugin_that_exits_at_import_as_a_warning_row(sandbox, plugin):
    proc = subprocess.run([MLBENCH, "list", "--plugin", str(sandbox / plugin)], cwd=sandbox, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode == 0, proc.stderr
    row = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith(plugin))
    assert "WARNING: plugin file" in row and "failed to import" in row
    assert "br " in proc.stdout and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ runs that must not fake success


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The command's one ``mlbench: error:`` line, its last line on stderr (progress lines may precede it)."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlbench: error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    return errors[0]


def _finished_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM runs WHERE status = 'FINISHED'").fetchone()[0]


NAN_SCORES = '''
import numpy as np
import scipy.sparse as sp

from mlbench.api import Method, as_binary_csr


class NanScores(Method):
    name = "nan-scores"
    description = "test double: predicts the truth and scores every label NaN"
    defaults = {}

    def fit(self, train, valid, ctx):
        return self

    def predict(self, split):
        return as_binary_csr(sp.csr_matrix(split.Y), len(split), split.n_labels)

    def predict_scores(self, split):
        return np.full((len(split), split.n_labels), np.nan, dtype=np.float32)
'''

EXITING_DISTRIBUTION = {"mlbench_exiting": "import sys\nsys.exit(0)\n"}


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory) -> Path:
    """An installed third-party distribution whose method module calls sys.exit(0) when imported."""
    site = tmp_path_factory.mktemp("site")
    info = site / "mlbench_exiting-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlbench-exiting\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mlbench.methods]\nexiting = mlbench_exiting:Exiting\n")
    for module, text in EXITING_DISTRIBUTION.items():
        (site / f"{module}.py").write_text(text)
    return site


RUN_CASES = {
    # plugins that exit at import: exit 1, one line, no FINISHED run in the store
    "file exits": ("run --method br --task synthetic -q --plugin {tmp}/exit0.py", 1, "SystemExit: 0"),
    "file raises BaseException": ("run --method br --task synthetic -q --plugin {tmp}/base_exception.py", 1, "Odd"),
    "distribution exits": ("run --method exiting --task synthetic -q", 1,
                           "plugin 'exiting' (distribution 'mlbench-exiting', entry point 'exiting = "
                           "mlbench_exiting:Exiting'): failed to load: SystemExit: 0"),
    "distribution exits, check": ("check exiting", 1, "failed to load: SystemExit: 0"),
    # NaN scores from a plugin: refused before anything is recorded as a result
    "NaN scores": ("run --method nan-scores --task synthetic -q --plugin {tmp}/nan_scores.py", 1, "non-finite"),
}


@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_a_plugin_cannot_fake_success(sandbox, fake_site, tmp_path, name):
    args, status, says = RUN_CASES[name]
    (sandbox / "nan_scores.py").write_text(NAN_SCORES)
    db = tmp_path / "mlflow.db"
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(fake_site), os.environ.get("PYTHONPATH", "")]))}
    env.pop("MLBENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    command = args.format(tmp=sandbox).split()
    if command[0] == "run":
        command += ["--tracking-uri", f"sqlite:///{db}"]
    start = time.monotonic()
    proc = subprocess.run([MLBENCH, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIME_BOUND_S * 4)
    assert time.monotonic() - start < TIME_BOUND_S
    assert says in _one_error_line(proc)
    assert proc.returncode == status
    assert _finished_runs(db) == 0


# ------------------------------------------------------------------ own data that cannot make a task

OWN_DATA = {
    "labels-all-empty": ([{"text": f"document {i} about things", "labels": []} for i in range(20)],
                         [{"text": "a test document", "labels": []}] * 3),
    "train-one-row": ([{"text": "the only training text", "labels": ["x"]}],
                      [{"text": "a test text", "labels": ["x"]}] * 3),
}


@pytest.mark.parametrize("folder", sorted(OWN_DATA))
def test_an_own_data_folder_that_makes_no_task_is_one_line(tmp_path, folder):
    train, test = OWN_DATA[folder]
    (tmp_path / folder).mkdir()
    for part, rows in (("train", train), ("test", test)):
        (tmp_path / folder / f"{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([MLBENCH, "run", "--method", "br", "--task", f"./{folder}", "--no-tracking", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIME_BOUND_S * 4,
                          env={**os.environ, "MLBENCH_NO_PROGRESS": "1"})
    assert folder in _one_error_line(proc)
    assert proc.returncode == 1


OWN_FEATURES = {  # LIBSVM files: (train, test, what the error says)
    "features-one-row": ("0 1:1.0 2:0.5\n", "0 1:1.0\n", "too few to carve a validation part"),
    "features-no-label": ("".join(f" 1:{i} 2:0.5\n" for i in range(20)), " 1:1.0\n", "no training row has a label"),
}


@pytest.mark.parametrize("folder", sorted(OWN_FEATURES))
def test_an_own_feature_folder_that_makes_no_task_is_one_line(tmp_path, folder):
    train, test, says = OWN_FEATURES[folder]
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "train.svm").write_text(train)
    (tmp_path / folder / "test.svm").write_text(test)
    proc = subprocess.run([MLBENCH, "run", "--method", "br", "--task", f"./{folder}", "--no-tracking", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIME_BOUND_S * 4,
                          env={**os.environ, "MLBENCH_NO_PROGRESS": "1"})
    line = _one_error_line(proc)
    assert folder in line and says in line
    assert proc.returncode == 1


# ------------------------------------------------------------------ a Ctrl-C while a fresh store is made

#: (store file, seconds after its first file appears): MLflow's migrations take seconds, Optuna's tables less.
INTERRUPTS = [("mlflow.db", 0.5), ("mlflow.db", 1.5), ("mlflow.db", 3.0), ("optuna.db", 0.2)]
STORE_COMMANDS = {
    "mlflow.db": ["run", "--method", "br", "--task", "synthetic", "-q", "--no-predictions"],
    "optuna.db": ["run", "--method", "br", "--task", "synthetic", "-q", "--no-tracking", "--trials", "1"],
}


def _interrupt_then_rerun(folder: Path, store: str, delay: float):
    folder.mkdir(parents=True)
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "MLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [MLBENCH, *STORE_COMMANDS[store]]
    first = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while first.poll() is None and time.monotonic() < deadline and not any(store in p.name for p in folder.iterdir()):
        time.sleep(0.005)  # the store's first file: the temporary one it is built in, or the store itself
    time.sleep(delay)
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=120)
    start = time.monotonic()
    rerun = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    return first.returncode, first_err, rerun, time.monotonic() - start, sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupted")
    with ThreadPoolExecutor(max_workers=len(INTERRUPTS)) as pool:
        return list(pool.map(lambda ic: _interrupt_then_rerun(root / str(ic[0]), *ic[1]), enumerate(INTERRUPTS)))


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
@pytest.mark.parametrize("index", range(len(INTERRUPTS)), ids=[f"{s} +{d}s" for s, d in INTERRUPTS])
@pytest.mark.slow
def test_ctrl_c_while_a_fresh_store_is_made_leaves_one_that_the_rerun_opens(interrupted, index):
    status, err, rerun, elapsed, left = interrupted[index]
    assert status == 130 and err.strip().splitlines()[-1] == "mlbench: interrupted", err
    assert "Traceback" not in err + rerun.stderr
    assert rerun.returncode == 0, rerun.stderr
    assert elapsed < TIME_BOUND_S
    assert not [name for name in left if ".creating-" in name]  # no temporary store left behind


# ------------------------------------------------------------------ report bundles are untrusted input


class FileWatch:
    """Whether anything opens, reads or writes one file while watched: Linux's inotify, through libc.

    ``available`` is False elsewhere; the tests then check the file's bytes only.
    """

    IN_ACCESS, IN_MODIFY, IN_OPEN = 0x1, 0x2, 0x20

    def __init__(self, path: Path):
        self.fd = -1
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True) if name and sys.platform.startswith("linux") else None
        if libc is None or not hasattr(libc, "inotify_init1"):
            return
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd >= 0 and libc.inotify_add_watch(self.fd, str(path).encode(),
                                                   self.IN_ACCESS | self.IN_MODIFY | self.IN_OPEN) < 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def touched(self) -> bool:
        if self.fd < 0:
            return False
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False
        finally:
            os.close(self.fd)
            self.fd = -1


CANARY = b"canary: a file outside the bundle; no byte of it may be read\n"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    """A small real bundle (one BR run on the synthetic task, so its predictions carry ranked columns) and an
    empty store for --merge."""
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method
    from mlbench.reports.page import write_report
    from mlbench.runs.runner import run_once
    from mlbench.runs.tracking import Tracker

    root = tmp_path_factory.mktemp("bundle")
    tracker = Tracker(f"sqlite:///{root / 'runs.db'}", artifact_dir=root / "artifacts")
    shutil.copyfile(root / "runs.db", root / "empty.db")  # a second store, as fresh, without a second migration
    run_once(get_method("br"), get_task("synthetic"), {}, 0, "cpu", tracker, preset="small", progress=False)
    write_report(tracker, root / "report", "synthetic", n_resamples=20)
    empty = Tracker(f"sqlite:///{root / 'empty.db'}", artifact_dir=root / "artifacts")
    (run_id,) = [row["run_id"] for row in csv.DictReader(open(root / "report" / "runs.csv"))]
    return {"dir": root / "report", "run": run_id, "empty": empty.tracking_uri}


def _rows(edit: Callable[[list[dict]], None]) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        rows = list(csv.DictReader(open(d / "runs.csv", newline="")))
        edit(rows)
        with open(d / "runs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["run_id"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return tamper


def _cell(key: str, value) -> Callable:
    def edit(rows: list[dict]) -> None:
        rows[0][key] = value(rows[0]) if callable(value) else value
    return _rows(edit)


def _meta(**fields) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        meta = json.loads((d / "bundle.json").read_text())
        meta.update(fields)
        (d / "bundle.json").write_text(json.dumps(meta))
    return tamper


def _text(name: str, text: str | bytes) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return tamper


def _file(which: str, run: str) -> str:
    return f"predictions/{run}.npz" if which == "predictions" else "tasks/synthetic.npz"


def _arrays(which: str, edit: Callable[[dict], None]) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        path = d / _file(which, run)
        with np.load(path) as z:
            arrays = dict(z)
        edit(arrays)
        np.savez_compressed(path, **arrays)
    return tamper


def _link(which: str, to: str = "canary") -> Callable:
    """``which`` (a bundle file, or the predictions/ or tasks/ folder) made a symbolic link to the canary, or to
    a copy of itself outside the bundle."""
    def tamper(d: Path, canary: Path, run: str) -> None:
        path = d / (_file(which, run) if which in ("predictions", "tasks") else which)
        if to == "copy":
            copy = canary.parent / path.name
            shutil.move(path, copy)
            path.symlink_to(copy, target_is_directory=copy.is_dir())
        else:
            path.unlink()
            path.symlink_to(canary)
    return tamper


def _hard_link(which: str) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        path = d / _file(which, run)
        path.unlink()
        os.link(canary, path)
    return tamper


def _special(which: str, kind: str) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        path = d / (_file(which, run) if which in ("predictions", "tasks") else which)
        path.unlink()
        os.mkfifo(path) if kind == "fifo" else path.mkdir()
    return tamper


def _cut(which: str) -> Callable:
    def tamper(d: Path, canary: Path, run: str) -> None:
        path = d / (_file(which, run) if which in ("predictions", "tasks") else which)
        data = path.read_bytes()
        if which == "runs.csv":  # through the middle of the first run's row (half the file may be the header)
            start = data.index(b"\n") + 1
            end = data.index(b"\n", start)
            path.write_bytes(data[: (start + end) // 2])
        else:
            path.write_bytes(data[: len(data) // 2])
    return tamper


def _lying_header(d: Path, canary: Path, run: str) -> None:
    """An .npy header that claims 10**9 entries over a few bytes: refused before anything is allocated."""
    import io
    import zipfile

    path = d / _file("predictions", run)
    with np.load(path) as z:
        arrays = dict(z)
    with zipfile.ZipFile(path, "w") as zf:
        for name, a in arrays.items():
            buf = io.BytesIO()
            if name == "indices":
                np.lib.format.write_array_header_1_0(buf, {"descr": "<i8", "fortran_order": False, "shape": (10**9,)})
                buf.write(b"\0" * 64)
            else:
                np.lib.format.write_array(buf, a)
            zf.writestr(f"{name}.npy", buf.getvalue())


def _drop_last_document(arrays: dict) -> None:
    n = len(arrays["ids"]) - 1
    arrays["ids"] = arrays["ids"][:n]
    arrays["indices"] = arrays["indices"][: arrays["indptr"][n]]
    arrays["indptr"] = arrays["indptr"][: n + 1]
    arrays["shape"] = np.array([n, arrays["shape"][1]])


def _up(d: Path, canary: Path) -> str:
    return os.path.relpath(canary, d)


#: name -> (tamper(bundle copy, canary, run id), part of the error line of --from, of --merge (None: --from only)).
TAMPERED = {
    # paths: fields that would name a file outside the bundle
    "predictions cell absolute": (_cell("predictions", lambda r: "CANARY"), "field predictions names", "same"),
    "predictions cell ..": (_cell("predictions", "../outside/canary"), "field predictions names", "same"),
    "predictions cell inside": (_cell("predictions", "predictions/../runs.csv"), "field predictions names", "same"),
    "run id ..": (_cell("run_id", "../outside/canary"), "field run_id holds", "same"),
    "run id absolute": (_cell("run_id", lambda r: "CANARY"), "field run_id holds", "same"),
    "task ..": (lambda d, c, r: (_cell("task", "../outside/canary")(d, c, r),
                                 _meta(base_task="../outside/canary", tasks=["../outside/canary"])(d, c, r)),
                "test labels of task '../outside/canary'): missing", "holds a report of task '../outside/canary'"),
    "task absolute": (lambda d, c, r: (_cell("task", str(c.with_suffix("")))(d, c, r),
                                       _meta(base_task=str(c.with_suffix("")))(d, c, r)), "): missing", None),
    # links and special files, at every level
    "predictions file links out": (_link("predictions"), "refused (a symbolic link)", "same"),
    "predictions folder links out": (_link("predictions/", "copy"), "refused (a symbolic link", "same"),
    "tasks file links out": (_link("tasks"), "refused (a symbolic link)", "same"),
    "tasks folder links out": (_link("tasks/", "copy"), "refused (a symbolic link", "same"),
    "runs.csv links out": (_link("runs.csv"), "runs.csv: refused (a symbolic link)", "same"),
    "bundle.json links out": (_link("bundle.json"), "bundle.json: refused (a symbolic link)", "same"),
    "predictions file hard link": (_hard_link("predictions"), "refused (a hard link", "same"),
    "tasks file hard link": (_hard_link("tasks"), "refused (a hard link", "same"),
    "predictions file is a FIFO": (_special("predictions", "fifo"), "refused (not a regular file)", "same"),
    "runs.csv is a FIFO": (_special("runs.csv", "fifo"), "runs.csv: refused (not a regular file)", "same"),
    "tasks file is a folder": (_special("tasks", "dir"), "refused (not a regular file)", None),
    # runs.csv: every value typed and in range
    "seed text": (_cell("seed", "zero"), "field seed: 'zero' is not a number", None),
    "seed negative": (_cell("seed", "-1"), "field seed: -1 is outside", None),
    "seed fraction": (_cell("seed", "1.5"), "field seed: 1.5 is not an integer", None),
    "seed huge": (_cell("seed", str(2**40)), "field seed", None),
    "fit seconds NaN": (_cell("fit_seconds", "nan"), "field fit_seconds: nan is outside", None),
    "fit seconds negative": (_cell("fit_seconds", "-3"), "field fit_seconds", None),
    "metric text": (_cell("test_micro_f1", "abc"), "field test_micro_f1: 'abc' is not a number", "same"),
    "metric above 1": (_cell("test_micro_f1", "1.5"), "field test_micro_f1: 1.5 is outside [0, 1]", None),
    "metric infinite": (_cell("test_hamming_loss", "inf"), "field test_hamming_loss", None),
    "method empty": (_cell("method", ""), "field method is empty", None),
    "label with a newline": (_cell("config_label", "two\nlines"), "field config_label", None),
    "fingerprint path": (_cell("fingerprint", "../x"), "field fingerprint", None),
    "config digest path": (_cell("config_digest", "/etc/x"), "field config_digest", None),
    "code digest path": (_cell("code_digest", "../../x"), "field code_digest", None),
    "predict seconds text": (_cell("predict_seconds", "soon"), "field predict_seconds: 'soon' is not a number", None),
    "tag with a NUL": (_cell("device", "cpu\0gpu"), "field device", None),
    "run listed twice": (_rows(lambda rows: rows.append(dict(rows[0]))), "is listed twice", "same"),
    "column missing": (_rows(lambda rows: [r.pop("seed") for r in rows]), "runs.csv: no column seed", None),
    "runs.csv cut": (_cut("runs.csv"), "columns expected", "same"),
    "runs.csv empty": (_text("runs.csv", ""), "runs.csv: no column run_id", None),
    "runs.csv not UTF-8": (_text("runs.csv", b"run_id,\xff\xfe\n"), "not UTF-8 text", None),
    "runs.csv field over the csv limit": (_cell("config_label", "x" * 200_000), "not a CSV table", None),
    # bundle.json
    "resamples huge": (_meta(n_resamples=10**9), "field n_resamples is 1000000000; it must be in [1, 10,000]", None),
    "resamples zero": (_meta(n_resamples=0), "field n_resamples is 0", None),
    "resamples text": (_meta(n_resamples="many"), "field n_resamples must be an integer, not str", None),
    "resamples boolean": (_meta(n_resamples=True), "field n_resamples must be an integer, not bool", None),
    "bundle.json not JSON": (_text("bundle.json", '{"base_task": "synth'), "bundle.json: not JSON", "same"),
    "bundle.json nested": (_text("bundle.json", "[" * 100_000), "bundle.json: not JSON", None),
    "bundle.json a list": (_text("bundle.json", "[]"), "bundle.json: not a JSON object", None),
    "base task missing": (_text("bundle.json", "{}"), "field base_task is missing", "same"),
    "tasks not names": (_meta(tasks=[1, 2]), "field tasks must list task names", "same"),
    "tasks too many": (_meta(tasks=[f"synthetic-trim{k}" for k in range(1, 300)]), "field tasks lists 299 tasks",
                       "same"),
    "command over lines": (_meta(command="a\n```\nb"), "field command must be one line", None),
    "config not a string": (_meta(config=["all"]), "field config must be a string, not list", None),
    "base task a page long": (_meta(base_task="synthetic" * 1000), "field base_task must be one line", "same"),
    # predictions/: arrays read without pickle, bounded, their shapes the task's
    "predictions cut": (_cut("predictions"), "not a readable .npz file", "same"),
    "predictions not a zip": (_text("predictions/RUN.npz", "hello"), "not a readable .npz file", None),
    "predictions pickled": (_arrays("predictions", lambda a: a.update(indices=np.array([object()] * 3))),
                            "a bundle holds numbers and text", "same"),
    "predictions extra array": (_arrays("predictions", lambda a: a.update(extra=np.zeros(3))),
                                "unexpected member 'extra.npy'", None),
    "predictions header lies": (_lying_header, "array indices declares more data than its file holds", "same"),
    "predictions wider than the task": (_arrays("predictions", lambda a: a.update(shape=a["shape"] + [0, 3])),
                                        "shape 400 x 23 where the task has 400 x 20", "same"),
    "predictions column out of range": (_arrays("predictions", lambda a: a["indices"].__setitem__(0, 99)),
                                        "field indices holds values outside [0, 20)", None),
    "predictions offsets wrong": (_arrays("predictions", lambda a: a.update(indptr=a["indptr"][::-1].copy())),
                                  "does not delimit", None),
    "predictions column twice": (_arrays("predictions", lambda a: a.update(
        indices=np.concatenate([a["indices"][:1], a["indices"][:1], a["indices"][2:]]))), "a column twice", None),
    "ranked column out of range": (_arrays("predictions", lambda a: a["top_labels"].__setitem__((0, 0), 77)),
                                   "top_labels names a column outside", None),
    "ranked columns too few": (_arrays("predictions", lambda a: a.update(top_labels=a["top_labels"][:, :2].copy())),
                               "field top_labels is", None),
    # tasks/: the labels' own arrays agree, and agree with the predictions
    "tasks labels disagree": (_arrays("tasks", lambda a: a.update(labels=a["labels"][:-1].copy())),
                              "shape 400 x 20 where the task has 400 x 19", "same"),
    "tasks other task": (_arrays("tasks", lambda a: a.update(task=np.asarray("reuters"))),
                         "holds the labels of task 'reuters', not of 'synthetic'", None),
    "tasks frequencies short": (_arrays("tasks", lambda a: a.update(train_frequency=a["train_frequency"][:3])),
                                "field train_frequency has 3 entries where 20 are expected", None),
    "tasks and predictions disagree": (_arrays("tasks", _drop_last_document),
                                       "shape 400 x 20 where the task has 399 x 20", "same"),
    "tasks cut": (_cut("tasks"), "not a readable .npz file", None),
}
MERGE_CASES = [name for name, (_, _, merge) in TAMPERED.items() if merge]


def _tampered(bundle: dict, tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """(tampered copy, canary outside it, --merge target) for one case."""
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary"
    canary.write_bytes(CANARY)
    d = tmp_path / "bundle"
    shutil.copytree(bundle["dir"], d)
    tamper = TAMPERED[name][0]
    if name.endswith("absolute"):  # a field holding the canary's absolute path
        tamper = {"predictions cell absolute": _cell("predictions", str(canary)),
                  "run id absolute": _cell("run_id", str(canary))}.get(name, tamper)
    if name == "predictions not a zip":
        tamper = _text(f"predictions/{bundle['run']}.npz", "hello")
    tamper(d, canary, bundle["run"])
    target = tmp_path / "target"
    shutil.copytree(bundle["dir"], target)
    return d, canary, target


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): (p.is_symlink(), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("mode, name", [("--from", n) for n in TAMPERED] + [("--merge", n) for n in MERGE_CASES])
def test_a_tampered_bundle_is_one_line_and_nothing_outside_is_read(bundle, tmp_path, capsys, monkeypatch, mode, name):
    from mlbench.cli.main import main

    monkeypatch.chdir(tmp_path)
    d, canary, target = _tampered(bundle, tmp_path, name)
    before = {"bundle": _snapshot(d), "target": _snapshot(target), "outside": sorted(canary.parent.iterdir())}
    capsys.readouterr()
    watch = FileWatch(canary)
    start = time.monotonic()
    if mode == "--from":
        status = main(["report", "--from", str(d)])
    else:
        status = main(["report", "--task", "synthetic", "--merge", str(d), "--out", str(target),
                       "--tracking-uri", bundle["empty"], "--resamples", "20"])
    elapsed = time.monotonic() - start
    opened = watch.touched()
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    says = TAMPERED[name][1] if mode == "--from" or TAMPERED[name][2] == "same" else TAMPERED[name][2]
    assert "Traceback" not in out.out + out.err
    assert len(lines) == 1 and lines[0].startswith("mlbench: error:"), out.err
    assert says.replace("RUN", bundle["run"]) in lines[0], lines[0]
    assert status == 1
    assert elapsed < TIME_BOUND_S
    assert not opened, "the canary outside the bundle was opened"
    assert canary.read_bytes() == CANARY and CANARY.decode() not in out.out + out.err
    assert sorted(canary.parent.iterdir()) == before["outside"]
    assert _snapshot(d) == before["bundle"]  # nothing written into the bundle either
    assert _snapshot(target) == before["target"]  # a failing merge leaves its target as it was
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".target.")]


def test_rendering_replaces_links_in_the_output_instead_of_writing_through_them(bundle, tmp_path, capsys):
    """``--from DIR`` writes README.md and figures into DIR: a link planted there is replaced, the file it
    points to is never opened."""
    from mlbench.cli.main import main

    outside = tmp_path / "outside"
    outside.mkdir()
    canaries = {}
    d = tmp_path / "bundle"
    shutil.copytree(bundle["dir"], d)
    for name in ("README.md", "figure2_hf_lf.png"):
        canaries[name] = outside / name
        canaries[name].write_bytes(CANARY)
        (d / name).unlink()
        (d / name).symlink_to(canaries[name])
    watches = [FileWatch(c) for c in canaries.values()]
    assert main(["report", "--from", str(d)]) == 0
    assert not any(w.touched() for w in watches)
    for name, canary in canaries.items():
        assert canary.read_bytes() == CANARY
        assert not (d / name).is_symlink() and (d / name).read_bytes() == (bundle["dir"] / name).read_bytes()
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_clean_bundle_still_renders_and_merges(bundle, tmp_path, capsys):
    """The checks refuse nothing a real bundle holds: the same bytes render, a merge into itself works."""
    from mlbench.cli.main import main

    d = tmp_path / "bundle"
    shutil.copytree(bundle["dir"], d)
    assert main(["report", "--from", str(d)]) == 0
    assert (d / "README.md").read_bytes() == (bundle["dir"] / "README.md").read_bytes()
    assert main(["report", "--task", "synthetic", "--merge", str(d), "--out", str(d), "--resamples", "20",
                 "--tracking-uri", bundle["empty"]]) == 0
    assert (d / "runs.csv").read_bytes() == (bundle["dir"] / "runs.csv").read_bytes()


def test_the_canary_watch_sees_a_read(tmp_path):
    """The harness itself: reading a watched file is seen (so a silent watch means nothing read it)."""
    canary = tmp_path / "canary"
    canary.write_bytes(CANARY)
    watch = FileWatch(canary)
    if not watch.available:
        pytest.skip("no inotify here: the bundle tests check the canary's bytes only")
    canary.read_bytes()
    assert watch.touched()
