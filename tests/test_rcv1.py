"""The RCV1 readers, on tiny fixtures written in each distribution's exact format."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from mlbench.api import DataError, Task
from mlbench.data import rcv1, rcv1_formats
from mlbench.data.build import Document
from mlbench.tasks.rcv1 import RCV1Dataset

# ----------------------------------------------------------------------- fixtures


def write(path: Path, text: str, gz: bool = False, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(text.encode(encoding))
    else:
        path.write_bytes(text.encode(encoding))
    return path


SGM_TEXT = {
    "train": "pesos fell sharply\nrates rise again\nthe election result\nsoccer cup final\n",
    "valid": "bank merger talks\n",
    "test": "oil price jumps\nparliament votes\n",
}
SGM_LABELS = {
    "train": "ECAT E12\nECAT E13 E12\nGCAT GPOL\nGCAT GSPO\n",
    "valid": "CCAT C18\n",
    "test": "MCAT M14\nGCAT GPOL\n",
}


def sgm_copy(directory: Path, naming: str = "text/label", markers: bool = False) -> Path:
    for split, (text_name, label_name) in rcv1_formats.SGM_NAMINGS[naming].items():
        labels = SGM_LABELS[split]
        if markers:
            labels = "".join(f"<s> {line} </s>\n" for line in labels.splitlines())
        write(directory / text_name, SGM_TEXT[split])
        write(directory / label_name, labels)
    return directory


LYRL_TRAIN = """.I 2286
.W
mexic peso fell sharp
dollar trad

.I 2287
.W
rat rise again

.I 2288
.W
no topic here
"""
LYRL_PT = [
    ".I 30000\n.W\noil pric jump\n\n.I 30001\n.W\nparliament vot\n",
    ".I 40000\n.W\nbank merg talk\n",
    ".I 50000\n.W\nsocc cup final\n\n",
    ".I 60000\n.W\nelect result\n",
]
LYRL_QRELS = """E12 2286 1
ECAT 2286 1
ECAT 2287 1
E13 2287 1
M14 30000 1
MCAT 30000 1
GCAT 30001 1
GPOL 30001 1
C18 40000 1
CCAT 40000 1
GSPO 50000 1
GCAT 50000 1
GPOL 60000 1
GCAT 60000 1
"""


def lyrl_copy(directory: Path, gz: bool = False, train: str = LYRL_TRAIN, qrels: str = LYRL_QRELS) -> Path:
    write(directory / rcv1_formats.LYRL_TRAIN, train, gz)
    for name, text in zip(rcv1_formats.LYRL_TEST_PARTS, LYRL_PT):
        write(directory / name, text, gz)
    write(directory / rcv1_formats.LYRL_QRELS, qrels, gz)
    return directory


def newsitem(itemid: int, headline: str, paragraphs: list[str], topics: list[str]) -> str:
    codes = "".join(f'<code code="{c}"><editdetail attribution="Reuters BIP Coding Group" action="confirmed" date="1996-08-20"/></code>' for c in topics)
    paras = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<?xml version="1.0" encoding="iso-8859-1" ?>\n'
        f'<newsitem itemid="{itemid}" id="root" date="1996-08-20" xml:lang="en">\n'
        f"<title>MEXICO: {headline}</title>\n<headline>{headline}</headline>\n"
        "<dateline>MEXICO CITY 1996-08-20</dateline>\n"
        f"<text>\n{paras}\n</text>\n"
        "<copyright>(c) Reuters Limited 1996</copyright>\n<metadata>\n"
        '<codes class="bip:countries:1.0"><code code="MEX"/></codes>\n'
        + (f'<codes class="bip:topics:1.0">{codes}</codes>\n' if topics else "")
        + '<dc element="dc.date.created" value="1996-08-20"/>\n</metadata>\n</newsitem>\n'
    )


def xml_copy(directory: Path) -> Path:
    stories = [
        ("19960820", 2286, "Peso falls", ["The peso fell sharply.", "Traders blamed the dollar (señor Pérez)."], ["ECAT", "E12"]),
        ("19960820", 2287, "Rates rise", ["Rates rose again."], ["ECAT", "E13"]),
        ("19960821", 26150, "Vote", ["Parliament voted."], ["GCAT", "GPOL"]),
        ("19960821", 26151, "Oil jumps", ["Oil prices jumped."], ["MCAT", "M14"]),
        ("19970819", 810000, "Cup final", ["The final was played."], ["GCAT", "GSPO"]),
        ("19970819", 810001, "No codes", ["Nothing."], []),
    ]
    for folder, itemid, headline, paragraphs, topics in stories:
        write(
            directory / folder / f"{itemid}newsML.xml",
            newsitem(itemid, headline, paragraphs, topics),
            encoding="iso-8859-1",
        )
    return directory


# ------------------------------------------------------------------------- SGM


@pytest.mark.parametrize("naming", ["text/label", "src/tgt"])
def test_sgm_reads_both_namings(tmp_path: Path, naming: str) -> None:
    sgm_copy(tmp_path, naming)
    assert rcv1.detect_format(tmp_path) == "sgm"
    train, valid, test = rcv1.read_rcv1(tmp_path)
    assert train[0] == Document("train-1", "pesos fell sharply", ("ECAT", "E12"))
    assert train[1].labels == ("ECAT", "E13", "E12")
    assert [d.id for d in train] == ["train-1", "train-2", "train-3", "train-4"]
    assert valid == [Document("valid-1", "bank merger talks", ("CCAT", "C18"))]
    assert [d.id for d in test] == ["test-1", "test-2"]
    assert test[1].labels == ("GCAT", "GPOL")


def test_sgm_strips_sequence_markers(tmp_path: Path) -> None:
    sgm_copy(tmp_path, "src/tgt", markers=True)
    train, valid, test = rcv1.read_rcv1(tmp_path)
    assert train[1].labels == ("ECAT", "E13", "E12")
    assert valid is not None and valid[0].labels == ("CCAT", "C18")


def test_sgm_line_count_mismatch_names_file_and_line(tmp_path: Path) -> None:
    sgm_copy(tmp_path)
    (tmp_path / "label_train").write_text("ECAT\nECAT\nGCAT\n")
    with pytest.raises(DataError, match=r"label_train:4: line count mismatch"):
        rcv1.read_rcv1(tmp_path)
    sgm_copy(tmp_path)
    (tmp_path / "text_test").write_text("oil price jumps\n")
    with pytest.raises(DataError, match=r"text_test:2: line count mismatch"):
        rcv1.read_rcv1(tmp_path)


def test_sgm_empty_label_line_is_an_error(tmp_path: Path) -> None:
    sgm_copy(tmp_path, "src/tgt")
    (tmp_path / "valid.tgt").write_text("<s> </s>\n")
    with pytest.raises(DataError, match=r"valid\.tgt:1: empty label line"):
        rcv1.read_rcv1(tmp_path)
    sgm_copy(tmp_path)
    (tmp_path / "label_train").write_text("ECAT\n\nGCAT\nGCAT\n")
    with pytest.raises(DataError, match=r"label_train:2: empty label line"):
        rcv1.read_rcv1(tmp_path)


def test_sgm_incomplete_copy_names_missing_file(tmp_path: Path) -> None:
    sgm_copy(tmp_path)
    (tmp_path / "label_test").unlink()
    with pytest.raises(DataError, match="missing label_test"):
        rcv1.read_rcv1(tmp_path)


def test_sgm_test_limit(tmp_path: Path) -> None:
    sgm_copy(tmp_path)
    _, _, test = rcv1.read_rcv1(tmp_path, max_test_docs=1)
    assert [d.id for d in test] == ["test-1"]


# -------------------------------------------------------------------- LYRL2004


@pytest.mark.parametrize("gz", [False, True])
def test_lyrl_reads_blocks_and_qrels(tmp_path: Path, gz: bool, caplog: pytest.LogCaptureFixture) -> None:
    lyrl_copy(tmp_path, gz=gz)
    assert rcv1.detect_format(tmp_path) == "lyrl2004"
    with caplog.at_level(logging.WARNING, logger="mlbench.data.rcv1"):
        train, valid, test = rcv1.read_rcv1(tmp_path)
    assert valid is None
    assert train == [
        Document("2286", "mexic peso fell sharp dollar trad", ("E12", "ECAT")),
        Document("2287", "rat rise again", ("ECAT", "E13")),
    ]
    assert [d.id for d in test] == ["30000", "30001", "40000", "50000", "60000"]
    assert test[2] == Document("40000", "bank merg talk", ("C18", "CCAT"))
    assert "skipped 1 documents without any topic" in caplog.text


def test_lyrl_test_limit_stops_before_missing_parts(tmp_path: Path) -> None:
    lyrl_copy(tmp_path)
    (tmp_path / rcv1_formats.LYRL_TEST_PARTS[3]).unlink()
    _, _, test = rcv1.read_rcv1(tmp_path, max_test_docs=3)
    assert [d.id for d in test] == ["30000", "30001", "40000"]
    with pytest.raises(DataError, match="lyrl2004_tokens_test_pt3.dat"):
        rcv1.read_rcv1(tmp_path)


def test_lyrl_gz_error_names_gz_file(tmp_path: Path) -> None:
    lyrl_copy(tmp_path, gz=True, qrels=LYRL_QRELS + "GCAT 70000\n")
    with pytest.raises(DataError, match=r"rcv1-v2\.topics\.qrels\.gz:15: expected '<topic> <docid> 1'"):
        rcv1.read_rcv1(tmp_path)


@pytest.mark.parametrize(
    ("qrels", "match"),
    [
        ("E12 2286 1\nECAT 2286\n", r"qrels:2: expected '<topic> <docid> 1'"),
        ("E12 2286 1\nE13 22x7 1\n", r"qrels:2: docid and relevance must be integers"),
    ],
)
def test_lyrl_malformed_qrels(tmp_path: Path, qrels: str, match: str) -> None:
    lyrl_copy(tmp_path, qrels=qrels)
    with pytest.raises(DataError, match=match):
        rcv1.read_rcv1(tmp_path)


@pytest.mark.parametrize(
    ("train", "match"),
    [
        (".I 2286\n.W\npeso\n\npeso again\n", r"train\.dat:5: a document block must start with '\.I <docid>'"),
        (".I 2286\n.W\npeso\n\n.I abc\n.W\nx\n", r"train\.dat:5: docid must be an integer"),
        (".I 2286\npeso\n", r"train\.dat:2: expected '\.W'"),
        (".W\npeso\n", r"train\.dat:1: a document block must start"),
    ],
)
def test_lyrl_malformed_blocks(tmp_path: Path, train: str, match: str) -> None:
    lyrl_copy(tmp_path, train=train)
    with pytest.raises(DataError, match=match):
        rcv1.read_rcv1(tmp_path)


def test_lyrl_corrupt_gz_is_a_data_error(tmp_path: Path) -> None:
    lyrl_copy(tmp_path, gz=True)
    (tmp_path / (rcv1_formats.LYRL_TRAIN + ".gz")).write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=r"lyrl2004_tokens_train\.dat\.gz: cannot read"):
        rcv1.read_rcv1(tmp_path)


def test_lyrl_missing_qrels(tmp_path: Path) -> None:
    lyrl_copy(tmp_path)
    (tmp_path / rcv1_formats.LYRL_QRELS).unlink()
    with pytest.raises(DataError, match=r"missing rcv1-v2\.topics\.qrels"):
        rcv1.read_rcv1(tmp_path)


# ------------------------------------------------------------------------- XML


def test_xml_reads_tree_and_splits_by_itemid(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xml_copy(tmp_path)
    assert rcv1.detect_format(tmp_path) == "xml"
    with caplog.at_level(logging.WARNING, logger="mlbench.data.rcv1"):
        train, valid, test = rcv1.read_rcv1(tmp_path)
    assert valid is None
    assert [d.id for d in train] == ["2286", "2287", "26150"]
    assert [d.id for d in test] == ["26151", "810000"]
    assert train[0].text == "Peso falls\nThe peso fell sharply.\nTraders blamed the dollar (señor Pérez)."
    assert train[0].labels == ("ECAT", "E12")
    assert test[0].labels == ("MCAT", "M14")
    assert "skipped 1 stories" in caplog.text


def test_xml_parse_error_names_file(tmp_path: Path) -> None:
    xml_copy(tmp_path)
    bad = write(tmp_path / "19960822" / "9999newsML.xml", '<?xml version="1.0"?>\n<newsitem itemid="9999"><headline>x</newsitem>')
    with pytest.raises(DataError, match=r"9999newsML\.xml: not well-formed XML"):
        rcv1.read_rcv1(tmp_path)
    write(bad, '<newsitem itemid="x9"><headline>x</headline></newsitem>')
    with pytest.raises(DataError, match=r"9999newsML\.xml: <newsitem> needs an integer itemid"):
        rcv1.read_rcv1(tmp_path)


# --------------------------------------------------------------- missing copy


def test_missing_copy_message(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    for call in (rcv1.detect_format, rcv1.read_rcv1):
        with pytest.raises(DataError) as err:
            call(tmp_path)
        msg = str(err.value)
        assert "\n" not in msg
        assert str(tmp_path) in msg
        for name in ("text_train", "label_train", "train.src", "valid.tgt", rcv1_formats.LYRL_TRAIN,
                     "lyrl2004_tokens_test_pt0.dat", rcv1_formats.LYRL_QRELS, ".xml", "--data-dir", "$MLBENCH_DATA/rcv1",
                     "RCV1/samples_py3.pkl", "$SCIKIT_LEARN_DATA"):
            assert name in msg, name
    with pytest.raises(DataError, match="no RCV1 copy found"):
        rcv1.detect_format(tmp_path / "does-not-exist")


def test_default_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "data"))
    assert rcv1.default_rcv1_dir() == tmp_path / "data" / "rcv1"
    monkeypatch.delenv("MLBENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert rcv1.default_rcv1_dir() == tmp_path / "cache" / "mlbench" / "rcv1"


# ------------------------------------------------------------------- the task


def test_task_from_sgm_keeps_its_valid_split(tmp_path: Path) -> None:
    task = RCV1Dataset().load(sgm_copy(tmp_path))
    assert isinstance(task, Task) and task.name == "rcv1" and task.dataset == "rcv1"
    assert (len(task.train), len(task.valid), len(task.test)) == (4, 1, 2)
    assert task.labels[:3] == ("E12", "ECAT", "GCAT")  # by train frequency, ties by name
    assert task.n_labels == 10 and task.train.ids[0] == "train-1"


def test_task_carves_fixed_validation(tmp_path: Path) -> None:
    ids = range(3000, 3040)
    topics = ["ECAT", "GCAT", "MCAT", "CCAT"]
    train = "".join(f".I {i}\n.W\ntok{i} word\n\n" for i in ids)
    qrels = LYRL_QRELS + "".join(f"{topics[i % 4]} {i} 1\n" for i in ids)
    lyrl_copy(tmp_path, train=train, qrels=qrels)
    a = RCV1Dataset().load(tmp_path, seed=0)
    b = RCV1Dataset().load(tmp_path, seed=7)
    assert (len(a.train), len(a.valid), len(a.test)) == (36, 4, 5)
    assert not set(a.train.ids) & set(a.valid.ids)
    assert a.valid.ids == b.valid.ids and a.fingerprint == b.fingerprint
    assert RCV1Dataset(max_test_docs=2).load(tmp_path).test.ids == ("30000", "30001")


def test_task_default_dir_and_rcv1_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "no-sklearn-cache"))  # its fetch_rcv1 cache is a fallback
    with pytest.raises(DataError, match=str(tmp_path / "rcv1")):
        RCV1Dataset().load()
    sgm_copy(tmp_path / "rcv1")
    assert len(RCV1Dataset().load().train) == 4
    assert len(RCV1Dataset().load(tmp_path).train) == 4  # a data home holding rcv1/


# ------------------------------------------------------------ copies that are not RCV1


def test_empty_test_split_is_an_error(tmp_path: Path) -> None:
    for itemid in (2286, 2287):
        write(tmp_path / f"{itemid}newsML.xml", newsitem(itemid, "h", ["p"], ["ECAT"]), encoding="iso-8859-1")
    with pytest.raises(DataError, match="has no test documents .every item id falls in the training range"):
        rcv1.read_rcv1(tmp_path)


def test_partial_copy_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xml_copy(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mlbench.data.rcv1"):
        rcv1.read_rcv1(tmp_path)
    assert "partial RCV1 copy" in caplog.text and "3 training documents and 5 topic codes" in caplog.text


def test_duplicate_item_ids_are_an_error(tmp_path: Path) -> None:
    xml_copy(tmp_path)
    write(tmp_path / "copy" / "2287newsML.xml", newsitem(2287, "again", ["p"], ["ECAT"]), encoding="iso-8859-1")
    with pytest.raises(DataError, match="1 item id.s. appear twice in train, e.g. 2287"):
        rcv1.read_rcv1(tmp_path)


def test_a_document_in_train_and_test_is_an_error(tmp_path: Path) -> None:
    lyrl_copy(tmp_path)
    write(tmp_path / rcv1_formats.LYRL_TEST_PARTS[3], LYRL_PT[3] + "\n.I 2287\n.W\nrat rise again\n")
    with pytest.raises(DataError, match="item id 2287 is in both train and test"):
        rcv1.read_rcv1(tmp_path)


def test_zipped_daily_archives_are_read_in_place(tmp_path: Path) -> None:
    import zipfile

    unzipped = xml_copy(tmp_path / "unzipped")
    (tmp_path / "zipped").mkdir()
    for day in ("19960820", "19960821", "19970819"):  # as the release ships them: one archive per day
        with zipfile.ZipFile(tmp_path / "zipped" / f"{day}.zip", "w") as z:
            for f in sorted((unzipped / day).iterdir()):
                z.write(f, f.name)
    assert rcv1.detect_format(tmp_path / "zipped") == "xml"
    got = rcv1.read_rcv1(tmp_path / "zipped")
    want = rcv1.read_rcv1(unzipped)
    assert [(d.id, d.text, d.labels) for d in got[0] + got[2]] == [(d.id, d.text, d.labels) for d in want[0] + want[2]]


def test_binary_garbage_in_a_token_file_is_an_error(tmp_path: Path) -> None:
    lyrl_copy(tmp_path)
    (tmp_path / rcv1_formats.LYRL_TRAIN).write_bytes(LYRL_TRAIN.encode() + b"\x89PNG\xff\xfe\x00garbage\n")
    with pytest.raises(DataError, match=r"lyrl2004_tokens_train\.dat:13: not UTF-8 text"):
        rcv1.read_rcv1(tmp_path)


def test_a_stray_xml_file_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xml_copy(tmp_path)
    write(tmp_path / "dtds" / "catalog.xml", '<?xml version="1.0"?>\n<catalog><entry/></catalog>\n')
    with caplog.at_level(logging.WARNING, logger="mlbench.data.rcv1"):
        train, _, test = rcv1.read_rcv1(tmp_path)
    assert len(train) == 3 and len(test) == 2
    assert "skipped 1 file(s) that are not <newsitem> stories, e.g." in caplog.text and "catalog.xml" in caplog.text
