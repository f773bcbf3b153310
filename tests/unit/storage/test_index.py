from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.core.errors import (
    DocumentNotFoundError,
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
)
from rag.ingest.indexing import add_document, index_paths, reindex, remove_documents
from rag.storage.loading import load_index
from rag.storage.manifest import IndexLock, read_manifest
from tests.fakes import HashingEmbedder


class CountingEmbedder(HashingEmbedder):
    def __init__(self):
        super().__init__(128)
        self.texts = 0

    def embed(self, texts, *, progress=False):
        self.texts += len(texts)
        return super().embed(texts)


def test_index_persists_and_reloads(settings, corpus_copy):
    emb = CountingEmbedder()
    index, report = index_paths(settings, emb, [corpus_copy])
    assert sorted(report.added) == sorted(p.stem for p in corpus_copy.glob("*.txt"))
    loaded = load_index(settings, embedding_model=emb.name, dimension=emb.dimension)
    assert [p.passage_id for p in loaded.passages] == [p.passage_id for p in index.passages]
    assert len(loaded.store) == len(loaded.passages) == loaded.manifest.count
    manifest = json.loads(
        (settings.index_dir / (settings.index_dir / "CURRENT").read_text() / "manifest.json").read_text()
    )
    assert manifest["embedding_model"] == emb.name and manifest["dimension"] == 128
    assert manifest["chunk_size"] == settings.chunk_size and manifest["normalised"] is True
    assert set(manifest["documents"]) == set(report.added)
    for doc in manifest["documents"].values():
        assert len(doc["content_hash"]) == 64


def test_unchanged_files_cost_no_embedding(settings, corpus_copy):
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    before = emb.texts
    _, report = index_paths(settings, emb, [corpus_copy])
    assert emb.texts == before
    assert report.passages_embedded == 0 and not report.changed
    assert len(report.unchanged) == 5


def test_changed_file_replaces_its_passages(settings, corpus_copy):
    emb = CountingEmbedder()
    index, _ = index_paths(settings, emb, [corpus_copy])
    target = corpus_copy / "000_ff6882ef16d64a7d.txt"
    target.write_text(
        "NATO ministers met in Oslo.\n\nThe zebra council approved a new striped flag for the alliance.\n"
    )
    before = emb.texts
    index, report = index_paths(settings, emb, [corpus_copy])
    assert report.updated == ["000_ff6882ef16d64a7d"]
    assert emb.texts - before == len(index.passages_of("000_ff6882ef16d64a7d"))
    texts = " ".join(p.text for p in index.passages_of("000_ff6882ef16d64a7d"))
    assert "zebra" in texts and "Euractiv" not in texts
    assert all(pid in index.passage_by_id for pid in index.store.ids)


def test_remove_document(settings, corpus_copy):
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    index, report = remove_documents(settings, emb, ["002_e0b0d12e770a7305"])
    assert "002_e0b0d12e770a7305" not in index.manifest.documents
    assert not index.passages_of("002_e0b0d12e770a7305")
    assert not any(i.startswith("002_") for i in index.store.ids)
    assert not (settings.index_dir / "documents" / "002_e0b0d12e770a7305.txt").exists()
    with pytest.raises(DocumentNotFoundError):
        remove_documents(settings, emb, ["nope"])


def test_manifest_refuses_other_model_or_chunking(settings, corpus_copy):
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    with pytest.raises(IndexMismatchError, match="embedding model"):
        load_index(settings, embedding_model="other-model", dimension=384)
    other = settings.model_copy(update={"chunk_size": 300})
    with pytest.raises(IndexMismatchError, match="chunking"):
        load_index(other, embedding_model=emb.name, dimension=emb.dimension)


def test_missing_and_corrupt_index(settings, corpus_copy):
    with pytest.raises(IndexMissingError):
        load_index(settings, embedding_model="x", dimension=4)
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    (segment,) = read_manifest(settings.index_dir).segments
    (settings.index_dir / "segments" / segment.name / "passages.jsonl").write_text("{not json\n")
    with pytest.raises(IndexCorruptError, match=segment.name):
        load_index(settings, embedding_model=emb.name, dimension=emb.dimension)
    (settings.index_dir / "CURRENT").write_text("gen-999999")
    with pytest.raises(IndexCorruptError):
        read_manifest(settings.index_dir)


def test_generations_are_swapped_and_pruned(settings, corpus_copy):
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    for i in range(3):
        (corpus_copy / f"extra{i}.txt").write_text(f"Extra article number {i} says the summit met in Vilnius.\n")
        index_paths(settings, emb, [corpus_copy])
    gens = sorted(p.name for p in settings.index_dir.glob("gen-*"))
    assert len(gens) == 2 and (settings.index_dir / "CURRENT").read_text() == gens[-1]
    assert not list(settings.index_dir.glob("tmp-*"))


def test_bad_files_are_skipped_and_batch_goes_on(settings, corpus_copy):
    (corpus_copy / "empty.txt").write_text("   \n")
    (corpus_copy / "binary.txt").write_bytes(b"\x00\x01\xff\xfe")
    (corpus_copy / "notes.pdf").write_bytes(b"%PDF-1.4")
    emb = CountingEmbedder()
    _, report = index_paths(settings, emb, [corpus_copy, corpus_copy / "notes.pdf", Path("/does/not/exist")])
    assert len(report.added) == 5
    skipped = {Path(s.path).name for s in report.skipped}
    assert {"empty.txt", "binary.txt", "notes.pdf", "exist"} <= skipped


def test_duplicate_content_under_new_name_is_refused(settings, corpus_copy):
    emb = CountingEmbedder()
    index_paths(settings, emb, [corpus_copy])
    data = (corpus_copy / "001_d33884d0ecc97606.txt").read_bytes()
    with pytest.raises(Exception, match="same content"):
        add_document(settings, emb, "copy.txt", data)
    assert "copy" not in read_manifest(settings.index_dir).documents


def test_reindex_rebuilds_from_stored_documents(settings, corpus_copy):
    emb = CountingEmbedder()
    index, _ = index_paths(settings, emb, [corpus_copy])
    add_document(
        settings, emb, "upload1.md", b"# Uploaded\n\nThe uploaded note says the alliance met in Madrid in 2022.\n"
    )
    rebuilt_settings = settings.model_copy(update={"chunk_size": 80, "chunk_overlap": 10})
    rebuilt, report = reindex(rebuilt_settings, emb, rebuild=True)
    assert set(rebuilt.manifest.documents) == set(index.manifest.documents) | {"upload1"}
    assert rebuilt.manifest.chunk_size == 80


def test_writer_lock_excludes_a_second_writer(settings, corpus_copy):
    emb = CountingEmbedder()
    with IndexLock(settings.index_dir):
        with pytest.raises(IndexLockedError):
            index_paths(settings, emb, [corpus_copy])
