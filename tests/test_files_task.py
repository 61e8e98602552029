"""Tasks read from the user's files: every format, both layouts, variants, and one-line errors for bad files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from mlbench.api import DataError, FitContext
from mlbench.cli.main import main
from mlbench.data import files
from mlbench.data.files import canonical_task_name, load_path_task, set_session_options
from mlbench.data.tasks import get_task
from mlbench.registry import get_method

# Two topics with their own words, a rare label, an empty text: small but learnable.
_WORDS = {"oil": "crude barrel opec pipeline", "grain": "wheat corn harvest bushel", "ship": "port vessel cargo"}


def _records(n: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        labs = ["oil"] if i % 2 else ["grain"]
        if i % 5 == 0:
            labs.append("ship")
        text = " ".join(_WORDS[lab] for lab in labs) + f" report {i}"
        out.append({"text": text if i != 3 else "", "labels": labs})
    return out


@pytest.fixture(autouse=True)
def _no_session_options():
    set_session_options({})
    yield
    set_session_options({})


def _write(folder: Path, fmt: str, parts: dict[str, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in parts.items():
        path = folder / f"{split}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif fmt == "json":
            path.write_text(json.dumps(rows))
        elif fmt in ("csv", "tsv"):
            frame = pd.DataFrame([{**r, "labels": " ".join(r["labels"])} for r in rows])
            frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
        elif fmt == "parquet":
            pd.DataFrame(rows).to_parquet(path)
        elif fmt == "txt":
            path.write_text("".join(f"{' '.join(r['labels'])}\t{r['text']}\n" for r in rows))
    return folder


_PARTS = {"train": _records(60), "test": _records(20, start=60)}
_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt")


@pytest.fixture(scope="module")
def tasks_by_format(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    return {fmt: load_path_task(str(_write(root / fmt, fmt, _PARTS))) for fmt in _FORMATS}


@pytest.mark.parametrize("fmt", _FORMATS)
def test_every_format_reads_the_same_task(tasks_by_format, fmt):
    task, ref = tasks_by_format[fmt], tasks_by_format["jsonl"]
    assert task.labels == ("grain", "oil", "ship")  # training frequency order
    assert len(task.train) + len(task.valid) == 60 and len(task.test) == 20
    assert task.train.ids[0].startswith("train-") and task.test.ids[0] == "test-0"
    assert task.fingerprint == ref.fingerprint
    assert task.dataset == ref.dataset and task.dataset.startswith("files:")
    assert task.test.texts == ref.test.texts and (task.test.Y != ref.test.Y).nnz == 0


def test_the_same_data_gives_the_same_scores_in_every_format(tasks_by_format):
    from mlbench.metrics import micro_precision_recall_f1

    scores = {}
    for fmt in ("jsonl", "csv", "parquet", "txt"):
        task = tasks_by_format[fmt]
        method = get_method("br")(min_df=1).fit(task.train, task.valid, FitContext(progress=False))
        scores[fmt] = micro_precision_recall_f1(task.test.Y, method.predict(task.test))[2]
    assert scores["jsonl"] > 0.9
    assert len(set(scores.values())) == 1


def test_validation_is_carved_when_absent_and_taken_when_present(tmp_path):
    carved = load_path_task(str(_write(tmp_path / "a", "jsonl", _PARTS)))
    assert 4 <= len(carved.valid) <= 8 and all(i.startswith("train-") for i in carved.valid.ids)
    given = load_path_task(str(_write(tmp_path / "b", "jsonl", {**_PARTS, "valid": _records(5, start=100)})))
    assert len(given.train) == 60 and given.valid.ids == tuple(f"valid-{i}" for i in range(5))


def test_split_files_may_carry_a_dataset_prefix(tmp_path):
    folder = _write(tmp_path / "plain", "jsonl", _PARTS)
    named = tmp_path / "named"
    named.mkdir()
    (folder / "train.jsonl").rename(named / "corpus-train.jsonl")
    (folder / "test.jsonl").rename(named / "corpus_test.jsonl")
    assert load_path_task(str(named)).fingerprint == load_path_task(str(_write(tmp_path / "again", "jsonl", _PARTS))).fingerprint
    (named / "train.jsonl").write_text((named / "corpus-train.jsonl").read_text())
    assert len(load_path_task(str(named)).test) == 20  # an exact train.<ext> wins over a prefixed one
    (named / "old_test.jsonl").write_text("")
    with pytest.raises(DataError, match="several test files .corpus_test.jsonl, old_test.jsonl."):
        load_path_task(str(named))


def test_one_file_with_a_split_column_and_an_id_column(tmp_path):
    rows = [{**r, "id": f"d{i}", "split": "train"} for i, r in enumerate(_records(30))]
    rows += [{**r, "id": f"t{i}", "split": "test"} for i, r in enumerate(_records(10))]
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = get_task(str(path))
    assert len(task.test) == 10 and task.test.ids[0] == "t0"
    assert set(task.train.ids) | set(task.valid.ids) == {f"d{i}" for i in range(30)}


def test_other_column_names_and_separator_through_task_options(tmp_path):
    frame = pd.DataFrame(
        [{"abstract": r["text"], "topics": ",".join(r["labels"]), "part": s} for s, rs in _PARTS.items() for r in rs]
    )
    frame.to_csv(tmp_path / "data.csv", index=False)
    options = {"text": "abstract", "labels": "topics", "split": "part", "label_sep": ","}
    task = load_path_task(str(tmp_path / "data.csv"), **options)
    assert task.labels == ("grain", "oil", "ship") and len(task.test) == 20
    with pytest.raises(DataError, match=r"data.csv: no column 'text' \(columns: abstract, topics, part\)"):
        load_path_task(str(tmp_path / "data.csv"), split="part")


def test_variants_of_a_path_and_the_canonical_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "my-data", "jsonl", _PARTS)
    base = get_task("my-data/")
    assert base.name == "./my-data"
    trimmed = get_task("./my-data-trim1")
    assert trimmed.name == "./my-data-trim1" and trimmed.labels == ("oil", "ship")
    both = get_task("my-data/-trim1-shuffled")
    assert both.name == "./my-data-trim1-shuffled" and both.fingerprint != trimmed.fingerprint
    assert canonical_task_name("my-data-shuffled") == "my-data-shuffled"  # no path marker: a registry name
    assert canonical_task_name("./my-data/-shuffled") == "./my-data-shuffled"
    assert canonical_task_name(str(tmp_path / "my-data")) == "./my-data"
    with pytest.raises(DataError, match="no such file or folder"):
        get_task("./nowhere-trim2")


def test_a_test_label_never_seen_in_train_is_kept_with_a_warning(tmp_path, caplog):
    test = _records(20, start=60)
    test[0]["labels"] = ["oil", "brand-new"]
    with caplog.at_level(logging.WARNING, logger=files.__name__):
        task = load_path_task(str(_write(tmp_path / "d", "jsonl", {"train": _PARTS["train"], "test": test})))
    assert task.labels[-1] == "brand-new" and task.label_freq[-1] == 0
    assert task.test.Y[:, task.n_labels - 1].nnz == 1
    assert "1 test label(s) never seen in train (brand-new)" in caplog.text


# ------------------------------------------------------------------ bad files


def _bad(tmp_path: Path, train_text: str, name: str = "train.jsonl") -> str:
    folder = _write(tmp_path / "bad", "jsonl", {"test": _records(4)})
    (folder / name).write_text(train_text)
    with pytest.raises(DataError) as info:
        load_path_task(str(folder))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_file_missing_column(tmp_path):
    msg = _bad(tmp_path, '{"body": "a", "labels": ["x"]}\n')
    assert msg.endswith("train.jsonl: no column 'text' (columns: body, labels); name another with --task-option")


def test_bad_file_missing_text_names_the_row(tmp_path):
    msg = _bad(tmp_path, '{"text": "a", "labels": ["x"]}\n{"text": null, "labels": ["x"]}\n')
    assert msg.endswith("train.jsonl: row 2: column 'text' is empty (missing value)")


def test_bad_file_text_column_empty_everywhere(tmp_path):
    msg = _bad(tmp_path, "text,labels\n,x\n,y\n", name="train.csv")
    assert msg.endswith("train.csv: column 'text' is empty in every row")


def test_bad_file_labels_of_the_wrong_type(tmp_path):
    msg = _bad(tmp_path, '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": {"x": 1}}\n')
    assert "train.jsonl: row 2: labels must be a list or a separated string, got dict" in msg
    msg = _bad(tmp_path, '{"text": "a", "labels": [1.5]}\n')
    assert "train.jsonl: row 1: labels must be strings (or integers), got float 1.5" in msg


def test_bad_file_duplicate_ids(tmp_path):
    msg = _bad(tmp_path, '{"id": 7, "text": "a", "labels": ["x"]}\n{"id": "7", "text": "b", "labels": ["y"]}\n')
    assert msg.endswith("train.jsonl: row 2: duplicate id '7' (first at " + str(tmp_path / "bad" / "train.jsonl") + " row 1)")


def test_bad_libmultilabel_line(tmp_path):
    msg = _bad(tmp_path, "x\ta text\nno tab here\n", name="train.txt")
    assert msg.endswith("train.txt: row 2: expected 'labels<TAB>text' or 'id<TAB>labels<TAB>text', got 1 field(s)")


def test_bad_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train.* or test.* file"):
        load_path_task(str(tmp_path / "empty"))
    (tmp_path / "one.jsonl").write_text('{"text": "a", "labels": ["x"]}\n')
    with pytest.raises(DataError, match="one.jsonl: no column 'split'"):
        load_path_task(str(tmp_path / "one.jsonl"))
    (tmp_path / "s.jsonl").write_text('{"text": "a", "labels": ["x"], "split": "dev"}\n')
    with pytest.raises(DataError, match="s.jsonl: row 1: column 'split' is 'dev'"):
        load_path_task(str(tmp_path / "s.jsonl"))


# ------------------------------------------------------------------ commands


@pytest.mark.slow
def test_cli_data_info_and_run_on_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "mine", "jsonl", _PARTS)
    assert main(["data", "info", "./mine"]) == 0
    out = capsys.readouterr().out
    assert "./mine" in out and "test_docs            20" in out
    rc = main(["run", "--method", "br", "--task", "./mine", "-q", "-p", "min_df=1",
               "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--artifact-dir", str(tmp_path / "art")])
    assert rc == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("./mine")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["mlbench.task"] == "./mine" and run.data.metrics["test_micro_f1"] > 0.9
    assert exp.artifact_location.startswith((tmp_path / "art").as_uri())


def test_cli_task_option_is_validated(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path), "--task-option", "colour=red"]) == 2
    assert "unknown task option colour" in capsys.readouterr().err


def test_a_task_named_by_an_absolute_path_keeps_its_artifacts_in_the_artifact_folder(tmp_path):
    from mlbench.runs.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", artifact_dir=tmp_path / "art")
    exp = tracker.client.get_experiment(tracker.experiment_id("/data/corpus-trim5"))
    assert exp.name == "/data/corpus-trim5"
    assert exp.artifact_location == (tmp_path / "art" / "data" / "corpus-trim5").as_uri()
