"""Syndicated copies: the same story carried by several outlets, found at index time and folded into one group.

Near-duplicates are pairs whose 5-word shingle sets have a Jaccard similarity of at least the threshold
(RAG_SYNDICATION_THRESHOLD). MinHashLSH finds the candidates, so adding an article costs a few lookups rather
than a pass over the archive; each candidate pair is then checked on the exact shingle sets, so the threshold
means what it says and is not blurred by the sketch's estimate.

A group is a connected set of such pairs, which makes the grouping a function of the articles alone, not of
the order they arrived in (a rebuild and a run of single uploads agree). Its id is the doc id of its
representative: the earliest-dated member, then the smallest id, so the wire original leads and removing it
promotes the next copy. Signatures persist in `minhash.npz` in the segment of the commit that computed them
(rag/storage/segment_files.py); groups live in the manifest (`DocumentRecord.group`, `Manifest.fold_threshold`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core.errors import IndexCorruptError

SHINGLE_WORDS = 5
NUM_PERM = 128
SEED = 1
SCHEME = "affine32"  # datasketch's hashing scheme; signatures of another scheme are not comparable
FILE = "minhash.npz"
# LSH finds candidates from banded signatures; banded at the threshold itself it misses about half of the pairs
# right at it, and banded at threshold - 0.2 a 0.84 pair still went unseen (its 128-value estimate was 0.77 and
# no band of 7 matched, a 5% event). Banded at half the threshold (0.3: 37 bands of 3) a pair at 0.6 is missed
# about once in 8,000 and one at 0.77 practically never; the extra candidates (a quarter of the pairs at 0.2)
# cost one exact check each, and the exact check decides.
LSH_SHARE = 0.5
SCAN_LIMIT = 32  # fresh articles up to which a scan of the stored signatures beats building the LSH
# Too short to tell a story from page furniture: two scrape failures in the RealTime QA archive are the same
# 41-word video-player complaint form under two different headlines (a Taco Bell story and a Ford recall).
MIN_SHINGLES = 40

if TYPE_CHECKING:
    from datasketch import LeanMinHash, MinHash

_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    """Lower-cased word 5-grams; a text shorter than that is one shingle (it still equals its copies)."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + SHINGLE_WORDS]).encode() for i in range(len(words) - SHINGLE_WORDS + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class Signatures:
    """MinHash signature per doc id, stored beside the generation so an upload does not re-shingle the archive."""

    def __init__(self, rows: dict[str, np.ndarray] | None = None):
        self.rows: dict[str, np.ndarray] = rows or {}
        self.computed: set[str] = set()  # rows computed since the last take_computed(): what a commit must store
        self._template: MinHash | None = None  # its permutations are shared: drawing them per article is slow

    def compute(self, doc_id: str, shingle_set: set[bytes]) -> np.ndarray:
        from datasketch import MinHash  # imported here: it pulls in scipy (0.5 s), which a query never needs

        if self._template is None:
            self._template = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)
        mh = self._template.copy()
        mh.update_batch(sorted(shingle_set))
        self.rows[doc_id] = mh.hashvalues.astype(np.uint32)
        self.computed.add(doc_id)
        return self.rows[doc_id]

    def take_computed(self) -> dict[str, np.ndarray]:
        """The rows computed since the last call (of documents still kept), and forget that they were."""
        out = {d: self.rows[d] for d in sorted(self.computed) if d in self.rows}
        self.computed = set()
        return out

    def minhash(self, doc_id: str) -> LeanMinHash:
        from datasketch import LeanMinHash

        return LeanMinHash(seed=SEED, hashvalues=self.rows[doc_id], scheme=SCHEME)

    def keep_only(self, doc_ids: Iterable[str]) -> None:
        live = set(doc_ids)
        self.rows = {d: v for d, v in self.rows.items() if d in live}

    def save(self, folder: Path) -> None:
        save_signatures(folder, self.rows)

    @classmethod
    def load(cls, folder: Path) -> Signatures:
        """An index written before folding existed has no file (and one from another datasketch scheme holds
        signatures that do not compare): either way they are computed afresh at the next write."""
        path = folder / FILE
        if not path.is_file():
            return cls()
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["scheme"]) != SCHEME:
                    return cls()
                ids, matrix = [str(d) for d in data["ids"]], data["signatures"]
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"{path} does not load: {exc}") from exc
        if matrix.shape != (len(ids), NUM_PERM):
            raise IndexCorruptError(f"{path} holds signatures of shape {matrix.shape} for {len(ids)} documents")
        return cls({d: matrix[i] for i, d in enumerate(ids)})


def save_signatures(folder: Path, rows: dict[str, np.ndarray]) -> None:
    ids = sorted(rows)
    matrix = np.stack([rows[d] for d in ids]) if ids else np.zeros((0, NUM_PERM), dtype=np.uint32)
    with open(folder / FILE, "wb") as fh:
        np.savez(fh, ids=np.array(ids, dtype=str), signatures=matrix, scheme=np.array(SCHEME))


def representative(members: Iterable[str], dates: dict[str, str | None]) -> str:
    """Earliest date first (the wire original), undated last, then the smallest id: a stable choice."""
    return min(members, key=lambda d: (dates.get(d) is None, dates.get(d) or "", d))


class _Components:
    """Union-find over doc ids."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, a: str) -> None:
        self.parent.setdefault(a, a)

    def find(self, a: str) -> str:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for a in self.parent:
            out.setdefault(self.find(a), []).append(a)
        return out


@functools.lru_cache(maxsize=8)
def _bands(threshold: float) -> tuple[int, int]:
    """MinHashLSH's (bands, rows per band) for a threshold; it integrates to find them (60 ms), so once."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    return lsh.b, lsh.r


def _candidates(
    fresh: list[str], live: list[str], signatures: Signatures, threshold: float
) -> Iterator[tuple[str, list[str]]]:
    """(document, the live documents sharing a band of its signature) for each fresh document.

    A batch goes through MinHashLSH: hash tables make the whole lookup linear in the archive. An upload of a few
    articles compares their bands against the stored signature matrix instead, the same bands and so the same
    candidates: building the LSH from the stored signatures costs 0.3 ms an article (3 s at 10,000), one
    vectorised scan about 1 microsecond (bench/dedup.py).
    """
    from datasketch import MinHashLSH

    if not fresh:
        return
    bands, rows = _bands(threshold * LSH_SHARE)
    if len(fresh) > SCAN_LIMIT:
        lsh = MinHashLSH(num_perm=NUM_PERM, params=(bands, rows))
        for doc_id in live:
            lsh.insert(doc_id, signatures.minhash(doc_id), check_duplication=False)
        for doc_id in fresh:
            yield doc_id, lsh.query(signatures.minhash(doc_id))
        return
    matrix = np.stack([signatures.rows[d] for d in live])
    for doc_id in fresh:
        query = signatures.rows[doc_id]
        hit = np.zeros(len(live), dtype=bool)
        for start in range(0, bands * rows, rows):  # MinHashLSH's bands: consecutive runs of `rows` values
            hit |= (matrix[:, start : start + rows] == query[start : start + rows]).all(axis=1)
        yield doc_id, [live[i] for i in np.flatnonzero(hit)]


def fold(
    texts: dict[str, str],
    dates: dict[str, str | None],
    groups: dict[str, str | None],
    signatures: Signatures,
    *,
    added: Iterable[str],
    broken: Iterable[str],
    threshold: float,
) -> dict[str, str]:
    """The group of every live document after a change.

    `texts` and `dates` cover the live documents; `groups` holds their groups before the change (None: not yet
    grouped, as for documents from before folding, which are then all grouped afresh). `added` are new or changed
    documents; `broken` are survivors of groups that lost a member, whose group may now fall apart.
    """
    live = set(texts)
    signatures.keep_only(live)
    cache: dict[str, set[bytes]] = {}

    def shingled(doc_id: str) -> set[bytes]:
        if doc_id not in cache:
            cache[doc_id] = shingles(texts[doc_id])
        return cache[doc_id]

    def copies(a: str, b: str) -> bool:
        sa, sb = shingled(a), shingled(b)
        return min(len(sa), len(sb)) >= MIN_SHINGLES and jaccard(sa, sb) >= threshold

    fresh = set(added) & live
    if any(groups.get(d) is None for d in live - fresh):
        fresh = set(live)  # an index from before folding (or from a different threshold): group every article
    for doc_id in sorted(live):
        if doc_id not in signatures.rows or doc_id in fresh:
            signatures.compute(doc_id, shingled(doc_id))

    comp = _Components()
    for doc_id in sorted(live):
        comp.add(doc_id)
    # Standing groups stay joined, except those that lost a member: theirs are re-linked from their own pairs.
    broken_groups = {groups[d] for d in broken if d in live and d not in fresh}
    by_group: dict[str, list[str]] = {}
    for doc_id in sorted(live - fresh):
        by_group.setdefault(groups[doc_id] or doc_id, []).append(doc_id)
    for group, members in by_group.items():
        if group not in broken_groups:
            for other in members[1:]:
                comp.union(members[0], other)
            continue
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if copies(a, b):
                    comp.union(a, b)

    for doc_id, others in _candidates(sorted(fresh), sorted(live), signatures, threshold):
        for other in others:
            if other != doc_id and comp.find(other) != comp.find(doc_id) and copies(doc_id, other):
                comp.union(doc_id, other)

    out: dict[str, str] = {}
    for members in comp.groups().values():
        rep = representative(members, dates)
        for doc_id in members:
            out[doc_id] = rep
    return out
