"""The eleven MULAN benchmarks as the ``scikit-multilearn==0.0.1`` source distribution ships them: each one's
file stem, domain, feature kind, sizes and the sha256 of its two dumps (pinned here, checked on every fetch).

Kept apart from :mod:`mlbench.data.mulan` (which reads the dumps with numpy) so that describing the datasets
(``mlbench list``) imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MulanSet:
    """One dataset: its file stem in the sdist, its shape, its feature kind and its dumps' sha256."""

    name: str
    stem: str
    domain: str
    dense: bool
    n_train: int
    n_test: int
    n_features: int  # after conversion (genbase: without its identifier column)
    n_labels: int
    train_sha256: str
    test_sha256: str


def _set(name, stem, domain, dense, n_train, n_test, n_features, n_labels, train_sha, test_sha) -> MulanSet:
    return MulanSet(name, stem, domain, dense, n_train, n_test, n_features, n_labels, train_sha, test_sha)


DATASETS: dict[str, MulanSet] = {s.name: s for s in (
    _set("emotions", "emotions", "music", True, 391, 202, 72, 6,
         "5aeead98f63825074021883dcb4a16d6d96e3f13e535448323a09bf76bc77e89",
         "d84af74a2dbd457e0249d91828da017af6bc83cef1d0e9080b99e8b9384dd2ca"),
    _set("scene", "scene", "image", True, 1211, 1196, 294, 6,
         "0374d88da2625fdae0a233cfd734762950f87c89cdcf982d364caf47c18ffdcd",
         "741914af229dc2378e1d5f57442b50862d52469cee57efb7308e7576ab57c7f9"),
    _set("yeast", "yeast", "biology", True, 1500, 917, 103, 14,
         "1a448f0cf72a01c8173c004f088c5a768af2ae5ba92497846df34ff6490f4f13",
         "71b014c4095714af833ca6c70b76a6ec0cdd3182931a206e84e1d0ebb133e84f"),
    _set("genbase", "genbase", "biology", False, 463, 199, 1185, 27,
         "1d55f1ea5760453a3b28144dc81da70289d4172bef054bb626d27d26e860b05d",
         "2c74f589e0ca355adcfba261753fc439c7cebbb673f9182c02a45b5cbd112b64"),
    _set("medical", "medical", "text", False, 333, 645, 1449, 45,
         "fa52a8e00a2e0820028a8678b888af9fe74513e4b84d04608328c3f0ece3a60c",
         "a69a7bad99a6b2e08c907c2f8ac712f717844b7902a72f89f34c1459bb04fe89"),
    _set("enron", "enron", "text", False, 1123, 579, 1001, 53,
         "7ebcaeffefab9f9a168922fe1be9c63456cd8a878e3c137a38ef14f1fb533d48",
         "6924e3c9e1513e6e00960717b49d08e53b79ce8d758e8402e8bfabc1d268013e"),
    _set("corel5k", "Corel5k", "image", False, 4500, 500, 499, 374,
         "7cc6a20af12d8e3ff16c36045840ca031276f2c90d7de6d3ef0a75a7376c5b40",
         "82a894ecb087944463482c84b8a4f0fdbddc160b7b777f67ac1700c2e07212c0"),
    _set("bibtex", "bibtex", "text", False, 4880, 2515, 1836, 159,
         "d9d6cc9755ec6cab851df0c3d71058603bc146f8aaecee6e1a6af3319dd3a172",
         "1aa9347b8ffbe0b37461654c750191b50ed3466407d53cfb1e9736734bc019f4"),
    _set("delicious", "delicious", "web text", False, 12920, 3185, 500, 983,
         "8f91e09a0555c2d600fd7b7092830135466c97b19f6989c38cfb0eb7f52e6727",
         "9a8af0f3cd4788a16cf59afaea92387313ba3cf7402a5f39d285c7d4e550bedd"),
    _set("tmc2007", "tmc2007-500", "text", False, 21519, 7077, 500, 22,
         "5be333dc2c5abe58bb6569b42dd2ebc21b40b60a5fa4e53cba6f85e3afa01322",
         "33288f3f5c5589ecd6588479764bd83be14c5e08fa5f27429136e7fb0cf5a039"),
    _set("mediamill", "mediamill", "video", True, 30993, 12914, 120, 101,
         "a8cecbf5b6c3cf2de9b12524939e966d07ae320ce849e935c4ed9b970c57a49a",
         "651668b891dc5c7e42b1e9a1db28a04011a88414c1c6e91a6b01c343a8a2d5c3"),
)}
NAMES = tuple(DATASETS)
#: What ``mlbench data fetch`` takes for all eleven at once.
ALL = "mulan"
