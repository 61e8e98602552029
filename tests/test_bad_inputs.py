"""Bad input, tried as a new user would, through the real ``mlbench`` console script.

Every case must end in exactly one ``mlbench: error:`` line, no traceback, the documented exit status
(2: the command line or a suite is wrong; 1: data or the store is), and before any data is loaded or
any store opened. Two things show the last part: the data home is an empty folder, so reading any
corpus would end in a different error (``rcv1``: no copy) or a download; and the tracking store's file
must not exist afterwards. A time bound catches anything slow that slips through.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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


def case(args: str, status: int, says: str, **kw) -> Case:
    return Case(tuple(args.split()), status, says, **kw)


RUN = "run --method br --task rcv1 --no-tracking"
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
]

SUITES = {
    "syntax.yaml": "name: x\nmethods: [br\ntasks: [rcv1]\n",
    "unknown_method.yaml": "methods: [br, nope]\ntasks: [rcv1]\n",
    "bad_param.yaml": "methods: {br: {C: -1}}\ntasks: [rcv1]\n",
    "bad_task.yaml": "methods: [br]\ntasks: [rcv1, rcv1-trim10-trim5]\n",
    "bad_seeds.yaml": "methods: [br]\ntasks: [rcv1]\nseeds: [zero]\n",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    (tmp / "data").mkdir()  # an empty data home: loading any corpus would fail differently
    (tmp / "a-file").write_text("not a folder\n")
    (tmp / "broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    for name, text in SUITES.items():
        (tmp / name).write_text(text)
    return tmp


def _run(c: Case, tmp: Path, index: int) -> tuple[subprocess.CompletedProcess, float, Path]:
    store = tmp / f"store-{index}.db"
    args = [a.format(tmp=tmp, file=tmp / "a-file", broken=tmp / "broken.py") for a in c.args]
    if args and args[0] in ("bench", "compare", "ui", "report"):
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
    assert len(CASES) >= 40
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
