"""The local store's commits, loads and merges: immutable segments named by a small live manifest (issue #15).

A commit writes one new segment holding only the rows it added (rag/storage/segment_files.py), then a new generation
whose manifest lists the live segments, the documents each has lost since it was written (tombstones), and
every document's record; CURRENT flips to it last. So adding one article to a large archive writes that
article's rows and a manifest, not the archive. Loading reads the live segments and drops tombstoned rows;
BM25 is built over all of them together, so its statistics are global and results equal one big index.

Merging rewrites some segments' live rows as one new segment (tombstoned rows are dropped) behind a new
manifest, with the same discipline. After a commit, more than RAG_MAX_SEGMENTS segments triggers a merge of
alike-sized ones (sizes in powers of MERGE_FACTOR), so each row is rewritten O(log n) times over an archive's
life; `rag index --optimize` merges everything into one segment.

Crash safety: a segment is fsynced and renamed into place before any manifest names it, and a manifest is
fsynced and renamed before CURRENT names it, so a kill -9 anywhere leaves the last generation live. Segments
and generations are deleted only when no kept generation (the live one and the one before, as readers may be
loading it: rag.storage.index.load_index retries if it loses that race) names them; the next writer sweeps the rest.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core.errors import IndexCorruptError
from rag.core.settings import Settings
from rag.storage.faiss_store import Part, SegmentedFaissStore, faiss_options
from rag.storage.index import Index
from rag.storage.manifest import (
    FORMAT_VERSION,
    KEEP_GENERATIONS,
    Manifest,
    SegmentEntry,
    current_generation_dir,
    current_name,
    fsync_dir,
    make_dir,
    now_utc,
    storage_errors,
    write_atomic,
)
from rag.storage.segment_files import (
    PREFIX,
    SegmentRows,
    next_segment_name,
    segments_dir,
    sync_tree,
    write_segment,
)

if TYPE_CHECKING:
    from rag.storage.manifest import ChangeSet

MERGE_FACTOR = 4  # segments whose live rows round to the same power of this are merged together
MOSTLY_DEAD = 0.5  # a segment with fewer live rows than this share joins any merge, to drop its tombstones


# --- loading -------------------------------------------------------------------------------------------------


# --- writing -------------------------------------------------------------------------------------------------


def commit(index: Index, settings: Settings, change: ChangeSet) -> Index:
    """Make `index`, which already holds `change` in memory, durable and live: a segment with the rows the
    change added, tombstones for the documents it removed or replaced, a new manifest. Caller holds the lock."""
    if index.manifest.format_version < FORMAT_VERSION:
        return rewrite(index, settings)  # the first write to an old index moves it into one segment
    root = settings.index_dir
    manifest = index.manifest
    entries = [e.model_copy(deep=True) for e in manifest.segments]
    by_name = {e.name: e for e in entries}
    for doc_id, segment in change.removed.items():
        entry = by_name.get(segment or "")
        if entry is not None and doc_id not in entry.deleted:
            entry.deleted.append(doc_id)
    gone = {e.name for e in entries if e.documents and not e.live_documents}  # nothing live left: no merge needed
    entries = [e for e in entries if e.name not in gone]
    with storage_errors(root):
        _prepare(root)
        written = None
        if change.articles or change.signatures:
            rows = SegmentRows(
                change.passages,
                change.articles,
                change.tokens,
                _vectors_kept(settings, change.vectors),
                change.signatures,
            )
            written = write_segment(root, next_segment_name(root), rows, settings, whole_index=not entries)
            entries.append(written[0])
            for article in change.articles:
                manifest.documents[article.doc_id].segment = written[0].name
        _publish(root, index, entries, undo=written[0].name if written else None)
    if isinstance(index.store, SegmentedFaissStore):
        index.store.replace(gone, None)
        if written and written[1] is not None:
            index.store.seal(Part(written[0].name, written[1]))
    if written and written[2] is not None:
        index.lexical = written[2]
    return index


def rewrite(index: Index, settings: Settings) -> Index:
    """Write the whole of `index` as one new segment and make it the only one (`rag index --optimize`, the first
    write to a format-1 index, `rag migrate`)."""
    return _merge(index, settings, {e.name for e in index.manifest.segments}, whole=True)


def merge(index: Index, settings: Settings, names: set[str]) -> Index:
    """Rewrite the live rows of segments `names` as one segment, dropping their tombstoned rows."""
    return _merge(index, settings, names, whole=names >= {e.name for e in index.manifest.segments})


def _merge(index: Index, settings: Settings, names: set[str], *, whole: bool) -> Index:
    root = settings.index_dir
    manifest = index.manifest
    docs = [d for d, r in manifest.documents.items() if whole or r.segment in names]
    keep = [e for e in manifest.segments if not whole and e.name not in names]
    at = next((i for i, e in enumerate(manifest.segments) if whole or e.name in names), 0)
    with storage_errors(root):
        _prepare(root)
        written = None
        if docs:
            rows = rows_of(index, set(docs), settings, all_signatures=whole)
            written = write_segment(root, next_segment_name(root), rows, settings, whole_index=whole)
            keep.insert(min(at, len(keep)), written[0])
            for doc_id in docs:
                manifest.documents[doc_id].segment = written[0].name
        manifest.format_version = FORMAT_VERSION
        _publish(root, index, keep, undo=written[0].name if written else None)
    if whole and written and written[1] is not None:
        index.store = SegmentedFaissStore(
            manifest.dimension, [Part(written[0].name, written[1])], kind=settings.faiss_kind, **faiss_options(settings)
        )
    elif isinstance(index.store, SegmentedFaissStore):
        index.store.replace(names, Part(written[0].name, written[1]) if written and written[1] is not None else None)
    if written and written[2] is not None:
        index.lexical = written[2]
    return index


def compact(index: Index, settings: Settings) -> Index:
    """After a write, committed or not: sweep what killed writers left, and merge alike-sized segments once
    there are more than RAG_MAX_SEGMENTS."""
    if settings.index_dir.is_dir():
        with storage_errors(settings.index_dir):
            sweep_leftovers(settings.index_dir)
    names = merge_candidates(index.manifest, settings.max_segments)
    return merge(index, settings, names) if names else index


def optimize(index: Index, settings: Settings) -> Index:
    """One segment without tombstones, unless the index is that already."""
    segments = index.manifest.segments
    settled = (
        index.manifest.format_version == FORMAT_VERSION
        and len(segments) == 1
        and not segments[0].deleted
        and segments[0].bm25
    )
    return index if settled or not index.manifest.documents else rewrite(index, settings)


def merge_candidates(manifest: Manifest, max_segments: int) -> set[str]:
    """The segments to merge now: the most crowded size tier (its smallest on a tie) and any mostly dead segment;
    the two smallest when no tier holds two. Segments holding only signatures wait for an optimize."""
    if len(manifest.segments) <= max_segments:
        return set()
    live: dict[str, int] = {}
    for record in manifest.documents.values():
        live[record.segment or ""] = live.get(record.segment or "", 0) + record.passages
    sized = [(live.get(e.name, 0), e) for e in manifest.segments if e.documents]
    tiers: dict[int, list[str]] = {}
    for rows, entry in sized:
        tiers.setdefault(int(math.log(max(rows, 1), MERGE_FACTOR)), []).append(entry.name)
    tier = max(sorted(tiers), key=lambda t: len(tiers[t]))
    chosen = (
        set(tiers[tier])
        if len(tiers[tier]) > 1
        else {e.name for _, e in sorted(sized, key=lambda s: (s[0], s[1].name))[:2]}
    )
    chosen |= {e.name for rows, e in sized if rows < MOSTLY_DEAD * e.passages}
    return chosen


def rows_of(index: Index, docs: set[str], settings: Settings, *, all_signatures: bool = False) -> SegmentRows:
    """The live rows of `docs` from the in-memory index, in its order: what a merge writes."""
    passages = [p for p in index.passages if p.doc_id in docs]
    ordered = list(dict.fromkeys([p.doc_id for p in passages] + sorted(docs)))
    ids = [p.passage_id for p in passages]
    signed = (
        index.signatures.rows
        if all_signatures
        else {d: index.signatures.rows[d] for d in ordered if d in index.signatures.rows}
    )
    return SegmentRows(
        passages,
        [index.articles[d] for d in ordered],
        index.lexical.tokens_of(ids),
        _vectors_kept(settings, vectors_of(index.store, ids)) if settings.vector_backend == "faiss" else None,
        dict(signed),
    )


def vectors_of(store, ids: list[str]) -> np.ndarray:
    if isinstance(store, SegmentedFaissStore):
        return store.vectors_of(ids)
    found: dict[str, np.ndarray] = {}
    for batch_ids, vectors in store.iter_vectors():
        found.update(zip(batch_ids, vectors))
    missing = [pid for pid in ids if pid not in found]
    if missing:
        raise IndexCorruptError(
            f"the vector store lacks {len(missing)} passages of the index, e.g. {missing[0]}; run `rag reindex`"
        )
    return np.stack([found[pid] for pid in ids]) if ids else np.zeros((0, 0), dtype=np.float32)


def _vectors_kept(settings: Settings, vectors: np.ndarray | None) -> np.ndarray | None:
    # Milvus holds the vectors itself (rag/storage/milvus/client.py): a segment keeps none then.
    return vectors if settings.vector_backend == "faiss" else None


def _prepare(root: Path) -> None:
    make_dir(root)
    sweep_leftovers(root)


def _publish(root: Path, index: Index, entries: list[SegmentEntry], *, undo: str | None) -> None:
    """Write the manifest as the next generation and flip CURRENT to it; on a failure, remove what this write
    made (its generation, its segment `undo`) so only the live generation stays."""
    manifest = index.manifest
    previous = current_generation_dir(root)
    number = (int(previous.name.split("-")[1]) if previous else 0) + 1
    manifest.segments = entries
    manifest.generation = number
    manifest.count = len(index.passages)
    manifest.updated_at = now_utc()
    manifest.vector_kind = getattr(index.store, "kind", manifest.vector_backend)
    tmp = root / f"tmp-{number:06d}-{os.getpid()}-{int(time.time() * 1000)}"
    final = root / f"gen-{number:06d}"
    try:
        tmp.mkdir()
        (tmp / "manifest.json").write_text(manifest.model_dump_json())
        sync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)  # left by a writer killed between this rename and the flip: never live
        os.replace(tmp, final)
        fsync_dir(root)  # the new name gen-NNNNNN is durable before CURRENT points at it
        write_atomic(root / "CURRENT", final.name.encode())
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if current_name(root) != final.name:
            shutil.rmtree(final, ignore_errors=True)
            if undo:
                shutil.rmtree(segments_dir(root) / undo, ignore_errors=True)
        raise
    index.root = root
    with contextlib.suppress(OSError):  # housekeeping: the write itself is committed
        _prune(root)


def _generation_number(name: str) -> int:
    number = name.removeprefix("gen-")
    return int(number) if number.isdigit() else -1


def _generations(root: Path) -> list[Path]:
    """Oldest first, by number: names are zero-padded to six digits only, so after gen-999999 comes gen-1000000,
    which sorts before it as a string."""
    return sorted((p for p in root.glob("gen-*") if p.is_dir()), key=lambda p: (_generation_number(p.name), p.name))


def _referenced(root: Path) -> set[str] | None:
    """Segments named by any generation on disk; None when one does not read (then nothing is deleted)."""
    names: set[str] = set()
    for gen in _generations(root):
        try:
            manifest = json.loads((gen / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        names.update(entry["name"] for entry in manifest.get("segments", []))
    return names


def _drop_unreferenced(root: Path) -> None:
    folder = segments_dir(root)
    referenced = _referenced(root) if folder.is_dir() else None
    if referenced is None:
        return
    for path in folder.glob(f"{PREFIX}*"):
        if path.name not in referenced:
            shutil.rmtree(path, ignore_errors=True)


def sweep_leftovers(root: Path) -> None:
    """Remove what writers that died left: temp files and folders, generations never made live, segments no
    generation names. Only called under the lock."""
    for path in root.glob("tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".*.tmp*"):
        path.unlink(missing_ok=True)
    for folder in (root / "documents", segments_dir(root)):
        if folder.is_dir():
            for path in folder.glob(".*.tmp*"):
                path.unlink(missing_ok=True)
    live = current_name(root)
    for gen in _generations(root):
        if live and _generation_number(gen.name) > _generation_number(live):
            shutil.rmtree(gen, ignore_errors=True)
    if segments_dir(root).is_dir():
        for path in segments_dir(root).glob("tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
    _drop_unreferenced(root)


def _prune(root: Path) -> None:
    """Keep the live generation and the one before it, and the segments they name."""
    live = (root / "CURRENT").read_text().strip()
    for path in _generations(root)[:-KEEP_GENERATIONS]:
        if path.name != live:
            shutil.rmtree(path, ignore_errors=True)
    _drop_unreferenced(root)
