"""Loading the live generation: its manifest checked against the settings, its segments assembled into one
Index, a format-1 generation read as it was written, and a retry when a commit moves CURRENT mid-load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from rag.core.errors import IndexCorruptError, IndexMissingError
from rag.core.settings import Settings
from rag.core.types import Article, Passage
from rag.storage.bm25 import LexicalIndex
from rag.storage.faiss_store import FaissStore, Part, SegmentedFaissStore, build_vector_store, faiss_options
from rag.storage.index import Index
from rag.storage.manifest import (
    Manifest,
    current_generation_dir,
    current_name,
    manifest_at,
)
from rag.storage.segment_files import (
    read_jsonl,
    read_segment,
)
from rag.text.syndication import Signatures

if TYPE_CHECKING:
    pass


def load_generation(settings: Settings, gen_dir: Path, manifest: Manifest) -> Index:
    """The Index the rest of the code uses, assembled from the generation's live segments."""
    if manifest.format_version == 1:
        return _load_format1(settings, gen_dir, manifest)
    root = settings.index_dir
    owners: dict[str | None, set[str]] = {}
    for doc_id, record in manifest.documents.items():
        owners.setdefault(record.segment, set()).add(doc_id)
    if set(owners) - {e.name for e in manifest.segments}:
        raise IndexCorruptError(f"manifest in {gen_dir} names documents in segments it does not list")
    passages: list[Passage] = []
    articles: dict[str, Article] = {}
    tokens: list[list[str]] = []
    parts: list[Part] = []
    signatures: dict[str, np.ndarray] = {}
    model_dir = None
    for entry in manifest.segments:
        segment = read_segment(root, entry, settings, manifest.dimension)
        deleted = set(entry.deleted)
        if {a.doc_id for a in segment.rows.articles} - deleted != owners.get(entry.name, set()):
            raise IndexCorruptError(
                f"segment {entry.name} holds other documents than the manifest in {gen_dir} gives it"
            )
        dead = set()
        for passage, toks in zip(segment.rows.passages, segment.rows.tokens):
            if passage.doc_id in deleted:
                dead.add(passage.passage_id)
            else:
                passages.append(passage)
                tokens.append(toks)
        articles.update((a.doc_id, a) for a in segment.rows.articles if a.doc_id not in deleted)
        signatures.update(segment.rows.signatures)
        if segment.store is not None:
            parts.append(Part(entry.name, segment.store, dead))
        model_dir = segment.bm25_dir
    ids = [p.passage_id for p in passages]
    if len(ids) != manifest.count or len(set(ids)) != len(ids):
        raise IndexCorruptError(
            f"index in {gen_dir} is inconsistent: {len(ids)} live passages ({len(set(ids))} distinct), manifest says "
            f"{manifest.count}"
        )
    store = build_vector_store(settings, manifest.dimension, None)
    if isinstance(store, SegmentedFaissStore):
        store.parts = parts
    whole = len(manifest.segments) == 1 and not manifest.segments[0].deleted
    lexical = LexicalIndex.from_rows(ids, tokens, model_dir if whole else None)
    return Index(
        root,
        manifest,
        articles,
        passages,
        store,
        lexical,
        Signatures({d: v for d, v in signatures.items() if d in articles}),
    )


def _load_format1(settings: Settings, gen_dir: Path, manifest: Manifest) -> Index:
    """An index written before segments: every row inside the generation's own folder."""
    try:
        articles = {a.doc_id: a for a in read_jsonl(gen_dir / "articles.jsonl", Article)}
        passages = read_jsonl(gen_dir / "passages.jsonl", Passage)
        lexical = LexicalIndex.load(gen_dir)
        signatures = Signatures.load(gen_dir)
    except (OSError, ValidationError, ValueError) as exc:
        raise IndexCorruptError(f"index files in {gen_dir} do not load: {exc}") from exc
    store = build_vector_store(settings, manifest.dimension, gen_dir)
    if len(passages) != manifest.count or len(lexical) != len(passages):
        raise IndexCorruptError(
            f"index in {gen_dir} is inconsistent: {len(passages)} passages, manifest says {manifest.count}"
        )
    if settings.vector_backend == "faiss" and len(store) != len(passages):
        raise IndexCorruptError(f"index in {gen_dir} has {len(store)} vectors for {len(passages)} passages")
    if isinstance(store, FaissStore):  # unnamed: the first write rewrites it as a segment
        store = SegmentedFaissStore(
            manifest.dimension, [Part(None, store)], kind=settings.faiss_kind, **faiss_options(settings)
        )
    return Index(settings.index_dir, manifest, articles, passages, store, lexical, signatures)


LOAD_ATTEMPTS = 3


def load_index(settings: Settings, *, embedding_model: str, dimension: int, missing_ok: bool = False) -> Index:
    """Load the live generation, checking it was built the way settings say."""
    # Two commits during one slow load prune the generation being read; that is a moved target, not
    # corruption, so read the new live generation instead of failing.
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        seen = current_name(settings.index_dir)
        try:
            return _load_live(settings, embedding_model=embedding_model, dimension=dimension, missing_ok=missing_ok)
        except IndexCorruptError:
            if attempt == LOAD_ATTEMPTS or current_name(settings.index_dir) == seen:
                raise
    raise AssertionError("unreachable")


def _load_live(settings: Settings, *, embedding_model: str, dimension: int, missing_ok: bool) -> Index:
    root = settings.index_dir
    gen_dir = current_generation_dir(root) if root.is_dir() else None
    if gen_dir is None:
        if missing_ok:
            return Index.empty(root, settings, embedding_model=embedding_model, dimension=dimension)
        raise IndexMissingError(f"no index at {root}: build one with `rag index data/corpus`")
    manifest = manifest_at(gen_dir)  # not read_manifest(root): CURRENT may have moved on since gen_dir was read
    manifest.check_compatible(embedding_model=embedding_model, dimension=dimension, settings=settings)
    return load_generation(settings, gen_dir, manifest)
