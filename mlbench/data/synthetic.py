"""A seeded generator of multi-label text with structure to learn.

The corpus is meant for speed and correctness tests, never for quality claims.
Its structure mimics RCV1:

* **Two-level hierarchy.** ``n_parents`` parent labels ``P0``, ``P1``, ... and
  children ``P0.C0``, ``P0.C1``, ... (children are dealt to parents in turn). A
  child always implies its parent, as RCV1's ``C15`` implies ``CCAT``.
* **Long tail.** Children are drawn from a Zipf-like distribution (weight
  ``1 / rank**zipf`` over a seeded random ranking); a document takes
  ``1 + Poisson(extra_labels)`` draws (duplicates count once), so it may span
  several parents. A share ``parent_only`` of documents carries one parent and
  no child. Every document has at least one label.
* **Label vocabularies.** Words are ``w0`` .. ``w{vocab_size-1}``. Each label
  (parents included) owns ``topic_vocab_fraction * vocab_size / n_labels`` word
  types at random; the rest are background words. Each token is, with
  probability ``topic_ratio``, a word of one of the document's labels (chosen
  uniformly, word Zipf-like inside the label's vocabulary), else a
  Zipf-like background word (both drawn as ``P(k) ~ 1/(k+1.5)``).
* **Lengths** are log-normal around ``doc_len`` (at least one token).
* **Empty documents.** With ``empty_fraction > 0`` exactly
  ``ceil(n_docs * empty_fraction)`` documents, evenly spread and the first among
  them, have the empty string as text (their labels are kept).

The label structure and vocabularies depend only on ``seed``, ``n_labels``,
``vocab_size`` and the shape parameters, not on ``n_docs``; documents are made
in fixed-size chunks, each from its own seeded stream, so ``generate(n)`` is a
prefix of ``generate(m)`` for ``n < m`` and :func:`iter_generate` streams an
RCV1-scale corpus without holding it in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import numpy as np

from mlbench.api import Split, Task
from mlbench.contract import ContractTasks
from mlbench.data.build import Document

#: Documents generated per chunk; fixed so that the output never depends on it.
CHUNK = 2048

#: Bumped whenever the same arguments would produce different documents.
GENERATOR_VERSION = 1


def default_n_parents(n_labels: int) -> int:
    """About ``sqrt(n_labels) / 1.5`` parents (3 for 20 labels, 7 for 103), at least 1."""
    if n_labels < 1:
        raise ValueError(f"n_labels must be at least 1, got {n_labels}")
    if n_labels <= 2:
        return 1
    return max(1, min(n_labels - 1, round(math.sqrt(n_labels) / 1.5)))


def label_hierarchy(n_labels: int, n_parents: int | None = None) -> dict[str, str | None]:
    """Every label name mapped to its parent (``None`` for a parent), parents first."""
    if n_parents is None:
        n_parents = default_n_parents(n_labels)
    if not 1 <= n_parents <= n_labels:
        raise ValueError(f"n_parents must be in [1, n_labels={n_labels}], got {n_parents}")
    out: dict[str, str | None] = {f"P{p}": None for p in range(n_parents)}
    n_children = n_labels - n_parents
    for p in range(n_parents):
        # children are dealt in turn: parent p gets those c with c % n_parents == p
        for j in range(len(range(p, n_children, n_parents))):
            out[f"P{p}.C{j}"] = f"P{p}"
    return out


def _log_uniform(n: int, u: np.ndarray) -> np.ndarray:
    """Indices in ``[0, n)`` with ``P(k) = log((k+2)/(k+1)) / log(n+1)``, about ``1/(k+1.5)``:
    a Zipf(1) law drawn by a closed-form inverse instead of a CDF search."""
    return np.minimum(np.exp(u * math.log(n + 1)).astype(np.int64) - 1, n - 1)


@dataclass(frozen=True)
class _Structure:
    names: tuple[str, ...]  # parents first, then children
    n_parents: int
    parent_of: np.ndarray  # child index (0-based among children) -> parent index
    child_cdf: np.ndarray  # cumulative child draw probabilities (child order)
    parent_cdf: np.ndarray  # cumulative parent probabilities for parent-only documents
    label_words: np.ndarray  # (n_labels, words_per_label) word ids, most frequent first
    background: np.ndarray  # background word ids, most frequent first
    table: np.ndarray  # object array: word + " ", word + "\n", then a lone "\n" (empty document)


def _structure(
    n_labels: int, vocab_size: int, n_parents: int | None, zipf: float, topic_vocab_fraction: float, seed: int
) -> _Structure:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    hierarchy = label_hierarchy(n_labels, n_parents)
    names = tuple(hierarchy)
    n_par = sum(1 for p in hierarchy.values() if p is None)
    index = {name: i for i, name in enumerate(names)}
    children = names[n_par:]
    parent_of = np.array([index[hierarchy[c]] for c in children], dtype=np.int64)  # type: ignore[index]
    n_children = len(children)

    if n_children:
        ranks = rng.permutation(n_children)
        weights = 1.0 / (ranks + 1.0) ** zipf
        child_p = weights / weights.sum()
        parent_p = np.bincount(parent_of, weights=child_p, minlength=n_par)
        parent_p = np.where(parent_p > 0, parent_p, child_p.min())  # childless parents
    else:
        child_p = np.zeros(0)
        parent_p = 1.0 / (rng.permutation(n_par) + 1.0) ** zipf
    child_cdf = np.cumsum(child_p)
    parent_cdf = np.cumsum(parent_p / parent_p.sum())
    if n_children:
        child_cdf /= child_cdf[-1]
    parent_cdf /= parent_cdf[-1]

    per_label = max(1, int(vocab_size * topic_vocab_fraction) // n_labels)
    if per_label * n_labels >= vocab_size:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for {n_labels} labels: "
            f"need more than {per_label * n_labels} words"
        )
    perm = rng.permutation(vocab_size)
    label_words = perm[: per_label * n_labels].reshape(n_labels, per_label)
    background = perm[per_label * n_labels :]

    words = [f"w{i}" for i in range(vocab_size)]
    table = np.array([w + " " for w in words] + [w + "\n" for w in words] + ["\n"], dtype=object)
    return _Structure(
        names=names,
        n_parents=n_par,
        parent_of=parent_of,
        child_cdf=child_cdf,
        parent_cdf=parent_cdf,
        label_words=label_words,
        background=background,
        table=table,
    )


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _chunk(
    s: _Structure,
    start: int,
    n: int,
    *,
    seed: int,
    chunk_index: int,
    doc_len: int,
    empty_fraction: float,
    extra_labels: float,
    parent_only: float,
    topic_ratio: float,
    length_sigma: float,
    id_prefix: str,
) -> list[Document]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, chunk_index]))
    n_labels = len(s.names)
    n_par = s.n_parents
    n_children = n_labels - n_par

    # ---- labels: children from the long-tailed distribution, parents implied
    Y = np.zeros((n, n_labels), dtype=bool)
    rows = np.arange(n)
    if n_children:
        k = 1 + np.minimum(rng.poisson(extra_labels, n), 7)
        kmax = int(k.max())
        draws = _draw(s.child_cdf, rng.random((n, kmax)))
        keep = np.arange(kmax)[None, :] < k[:, None]
        r, c = np.broadcast_to(rows[:, None], draws.shape)[keep], draws[keep]
        Y[r, n_par + c] = True
        Y[r, s.parent_of[c]] = True
        only = rng.random(n) < parent_only
    else:
        only = np.ones(n, dtype=bool)
    if only.any():
        Y[only] = False
        Y[rows[only], _draw(s.parent_cdf, rng.random(int(only.sum())))] = True

    lab_rows, lab_cols = np.nonzero(Y)
    n_lab = np.bincount(lab_rows, minlength=n)
    lab_start = np.concatenate(([0], np.cumsum(n_lab)[:-1]))

    # ---- lengths (empty documents by global position)
    g = np.arange(start, start + n, dtype=np.float64)
    lengths = np.maximum(
        1, np.rint(doc_len * rng.lognormal(-0.5 * length_sigma**2, length_sigma, n)).astype(np.int64)
    )
    if empty_fraction > 0:
        empty = np.ceil((g + 1) * empty_fraction) > np.ceil(g * empty_fraction)
        lengths[empty] = 0

    # ---- tokens
    total = int(lengths.sum())
    doc_of = np.repeat(rows, lengths)
    topical = rng.random(total) < topic_ratio
    tok = np.empty(total, dtype=np.int64)
    nt = int(topical.sum())
    d = doc_of[topical]
    pick = lab_cols[lab_start[d] + (rng.random(nt) * n_lab[d]).astype(np.int64)]
    tok[topical] = s.label_words[pick, _log_uniform(s.label_words.shape[1], rng.random(nt))]
    tok[~topical] = s.background[_log_uniform(len(s.background), rng.random(total - nt))]

    # ---- text: one join over the chunk, then one split. The last token of each
    # document carries "\n" instead of " "; an empty document is a lone "\n".
    vocab = len(s.table) // 2
    ends = np.cumsum(lengths) - 1
    tok[ends[lengths > 0]] += vocab
    is_empty = lengths == 0
    if is_empty.any():
        tok = np.insert(tok, np.cumsum(lengths)[is_empty], 2 * vocab)
    texts = "".join(s.table[tok].tolist()).split("\n")

    names = s.names
    cache: dict[tuple[int, ...], tuple[str, ...]] = {}
    docs = []
    bounds = np.concatenate((lab_start, [len(lab_cols)])).tolist()
    cols = lab_cols.tolist()
    for i in range(n):
        key = tuple(cols[bounds[i] : bounds[i + 1]])
        labels = cache.get(key)
        if labels is None:
            labels = cache[key] = tuple(names[j] for j in key)
        docs.append(Document(f"{id_prefix}{start + i}", texts[i], labels))
    return docs


def iter_generate(
    n_docs: int,
    n_labels: int = 20,
    vocab_size: int = 2000,
    doc_len: int = 60,
    seed: int = 0,
    *,
    empty_fraction: float = 0.0,
    n_parents: int | None = None,
    zipf: float = 1.1,
    extra_labels: float = 0.6,
    parent_only: float = 0.1,
    topic_ratio: float = 0.3,
    topic_vocab_fraction: float = 0.5,
    length_sigma: float = 0.35,
    id_prefix: str = "syn-",
) -> Iterator[Document]:
    """Stream ``n_docs`` synthetic documents (ids ``f"{id_prefix}{i}"``); see the module doc."""
    if n_docs < 0:
        raise ValueError(f"n_docs must be non-negative, got {n_docs}")
    if doc_len < 1:
        raise ValueError(f"doc_len must be at least 1, got {doc_len}")
    if not 0.0 <= empty_fraction <= 1.0:
        raise ValueError(f"empty_fraction must be in [0, 1], got {empty_fraction}")
    s = _structure(n_labels, vocab_size, n_parents, zipf, topic_vocab_fraction, seed)
    for c, start in enumerate(range(0, n_docs, CHUNK)):
        docs = _chunk(
            s,
            start,
            CHUNK,
            seed=seed,
            chunk_index=c,
            doc_len=doc_len,
            empty_fraction=empty_fraction,
            extra_labels=extra_labels,
            parent_only=parent_only,
            topic_ratio=topic_ratio,
            length_sigma=length_sigma,
            id_prefix=id_prefix,
        )
        yield from docs[: n_docs - start]


def generate(
    n_docs: int,
    n_labels: int = 20,
    vocab_size: int = 2000,
    doc_len: int = 60,
    seed: int = 0,
    **kwargs: object,
) -> list[Document]:
    """``n_docs`` synthetic documents as a list; keyword options as :func:`iter_generate`."""
    return list(iter_generate(n_docs, n_labels, vocab_size, doc_len, seed, **kwargs))  # type: ignore[arg-type]


def label_names(n_labels: int, n_parents: int | None = None) -> list[str]:
    """The full label list of a synthetic corpus (parents first), seen or not."""
    return list(label_hierarchy(n_labels, n_parents))


__all__ = ["CHUNK", "GENERATOR_VERSION", "default_n_parents", "generate", "iter_generate", "label_hierarchy", "label_names"]


# ------------------------------------------------------------- the contract's tasks

#: The label that only test documents of the contract's main task carry.
UNSEEN_LABEL = "zz-never-in-train"
#: Labels of the contract's identity task; each owns IDENTITY_WORDS word types no other label uses.
IDENTITY_LABELS = 6
IDENTITY_WORDS = 8


def identity_documents() -> list[Document]:
    """360 documents whose labels each own their words, every label common enough to learn.

    Label ``j`` (``L0`` .. ``L5``, decreasing frequency so the task's order is fixed) owns the words
    ``l{j}w0`` .. ``l{j}w7``; a document carries one or two labels, draws most of its words from theirs and
    the rest from a shared background. Any method that learns the labels puts each one in its own column.
    """
    rng = np.random.default_rng(13)
    weights = np.linspace(2.0, 1.0, IDENTITY_LABELS)
    weights /= weights.sum()
    docs = []
    for i in range(360):
        n = 1 + int(rng.random() < 0.3)
        labels = sorted(set(rng.choice(IDENTITY_LABELS, size=n, replace=False, p=weights).tolist()))
        words = [f"l{rng.choice(labels)}w{rng.integers(IDENTITY_WORDS)}" for _ in range(10)]
        words += [f"bg{rng.integers(40)}" for _ in range(6)]
        rng.shuffle(words)
        docs.append(Document(f"id{i}", " ".join(words), tuple(f"L{j}" for j in labels)))
    return docs


@lru_cache(maxsize=1)
def contract_tasks() -> ContractTasks:
    """The tasks :mod:`mlbench.contract` checks a method on.

    ``main``: 300 generated documents over 8 labels with a few empty ones (210 train / 30 valid / 60 test),
    plus :data:`UNSEEN_LABEL` on every tenth test document (no training document carries it);
    ``without_unseen``: the same documents without it; ``identity``: :func:`identity_documents`
    (240 / 40 / 80). ``features``: the same three tasks with each document a 0/1 row over the words of all
    of them (texts empty), for the methods that read features.
    """
    from mlbench.data.build import build_task

    docs = generate(300, n_labels=8, vocab_size=300, doc_len=30, seed=7, empty_fraction=0.02)
    train, valid, test = docs[:210], docs[210:240], docs[240:]
    seen = {lab for d in docs for lab in d.labels}
    with_unseen = [Document(d.id, d.text, d.labels + ((UNSEEN_LABEL,) if i % 10 == 0 else ()))
                   for i, d in enumerate(test)]
    ident = identity_documents()
    text = ContractTasks(
        main=build_task("contract", "synthetic", train, valid, with_unseen, label_set=seen | {UNSEEN_LABEL}),
        without_unseen=build_task("contract-seen", "synthetic", train, valid, test, label_set=seen),
        identity=build_task("contract-identity", "synthetic", ident[:240], ident[240:280], ident[280:]),
        unseen_label=UNSEEN_LABEL,
    )
    words = sorted({w for task in (text.main, text.identity) for s in task.splits.values() for d in s.texts
                    for w in d.split()})
    as_features = ContractTasks(*(_as_feature_task(task, words) for task in (text.main, text.without_unseen, text.identity)),
                                unseen_label=UNSEEN_LABEL, vocabulary=tuple(words))
    return replace(text, features=as_features)


def _as_feature_task(task: Task, words: list[str]) -> Task:
    """``task`` with each document a 0/1 row over ``words`` instead of its text."""
    import scipy.sparse as sp

    column = {w: j for j, w in enumerate(words)}

    def rows(split: Split) -> sp.csr_matrix:
        pairs = [(i, column[w]) for i, text in enumerate(split.texts) for w in set(text.split())]
        r, c = (np.array(x, dtype=np.int64) for x in zip(*pairs)) if pairs else (np.zeros(0, int), np.zeros(0, int))
        return sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(split), len(words)))

    return replace(task, name=task.name + "-features", dataset=task.dataset + "-features",
                   train=replace(task.train, texts=(), X=rows(task.train)),
                   valid=replace(task.valid, texts=(), X=rows(task.valid)),
                   test=replace(task.test, texts=(), X=rows(task.test)))
