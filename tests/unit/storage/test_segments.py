"""The segmented index (issue #15): a commit writes only its own rows; searching many segments gives what one
big index gives; merges and --optimize drop tombstoned rows; a format-1 index still loads and is converted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rag.ingest.indexing import add_document, index_paths, optimize_index, remove_documents
from rag.search.retriever import Retriever
from rag.storage.bm25 import LexicalIndex
from rag.storage.faiss_store import FaissStore, Part, SegmentedFaissStore
from rag.storage.index import Index
from rag.storage.loading import load_index
from rag.storage.manifest import Manifest, read_manifest
from rag.storage.segments import merge_candidates
from rag.text.syndication import Signatures

DIM = 32
QUERIES = [
    "NATO Ukraine council summit",
    "harbour ferry strike",
    "Vilnius declaration membership",
    "tidal power plant vote",
]


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def options(**kw) -> dict:
    return {"ann_threshold": 10**9, "hnsw_m": 16, "ef_search": 128} | kw


def segmented_and_flat(rng: np.random.Generator) -> tuple[SegmentedFaissStore, FaissStore, np.ndarray]:
    """Five parts built by commits of different sizes, with removals and re-added ids, and one flat store
    holding exactly the live rows."""
    store = SegmentedFaissStore(DIM, [], **options())
    flat = FaissStore(DIM, kind="flat", **options())
    for commit, size in enumerate([400, 30, 1, 250, 7]):
        ids = [f"c{commit}-{i}" for i in range(size)]
        removed = [f"c{commit - 1}-{i}" for i in range(0, 30, 3)] if commit else []
        readded = [f"c0-{commit}"] if commit else []  # an updated document keeps its passage id, in a newer segment
        vectors = unit_rows(rng, size + len(readded))
        for target in (store, flat):
            target.apply(add_ids=ids + readded, add_vectors=vectors, remove_ids=removed)
        store.seal(Part(f"seg-{commit}", store.parts[-1].store))
    return store, flat, unit_rows(rng, 40)


def test_flat_segments_search_exactly_like_one_flat_index():
    store, flat, queries = segmented_and_flat(np.random.default_rng(3))
    assert len(store) == len(flat) and sorted(store.ids) == sorted(flat.ids) and len(store.parts) == 5
    allow = set(flat.ids[::7])
    for query in queries:
        for k in (1, 10, 60):
            got, want = store.search(query, k), flat.search(query, k)
            assert [pid for pid, _ in got] == [pid for pid, _ in want]
            assert np.array_equal([s for _, s in got], [s for _, s in want])  # the same float for the same row
            got, want = store.search(query, k, allow), flat.search(query, k, allow)
            assert [pid for pid, _ in got] == [pid for pid, _ in want]
    assert store.search(queries[0], 5, {"c0-0", "c0-3"}) == flat.search(queries[0], 5, {"c0-0", "c0-3"})
    old = store.parts[0].store
    stale = old.vectors[old._row_of["c0-3"]]  # c0-3 was re-added later: its first vector must never be found
    assert not any(pid == "c0-3" and abs(s - 1) < 1e-6 for pid, s in store.search(stale, 3))


def test_a_part_with_many_tombstones_is_still_exact(monkeypatch):
    import rag.storage.faiss_store

    monkeypatch.setattr(
        rag.storage.faiss_store, "OVERFETCH_DEAD", 5
    )  # search its live rows through an allow set instead
    store, flat, queries = segmented_and_flat(np.random.default_rng(4))
    allow = set(flat.ids[::5]) | {"c0-3"}
    for query in queries[:10]:
        assert [p for p, _ in store.search(query, 20)] == [p for p, _ in flat.search(query, 20)]
        assert [p for p, _ in store.search(query, 20, allow)] == [p for p, _ in flat.search(query, 20, allow)]


def test_hnsw_segments_recall_what_exact_search_finds():
    """Per-segment HNSW graphs are approximate each; merged, the top 10 still recall what exact search finds
    (what holds: recall, not equality; after --optimize there is one graph, as before segments)."""
    rng = np.random.default_rng(5)
    store = SegmentedFaissStore(DIM, [], **options())
    flat = FaissStore(DIM, kind="flat", **options())
    for commit in range(4):
        ids, vectors = [f"s{commit}-{i}" for i in range(1500)], unit_rows(rng, 1500)
        store.parts.append(Part(f"seg-{commit}", FaissStore(DIM, kind="hnsw", **options())))
        store.parts[-1].store.apply(add_ids=ids, add_vectors=vectors, remove_ids=[])
        flat.apply(add_ids=ids, add_vectors=vectors, remove_ids=[])
    assert store.kind == "hnsw"
    recalls = [
        len({p for p, _ in store.search(q, 10)} & {p for p, _ in flat.search(q, 10)}) / 10 for q in unit_rows(rng, 30)
    ]
    assert np.mean(recalls) >= 0.9


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


STORY = b"Ferry strike ends\n\nThe harbour ferry union ended its strike after the council met on Tuesday in Lowmere.\n"


def test_a_commit_writes_only_its_own_rows(settings, hashing_embedder, corpus_copy):
    index_paths(settings, hashing_embedder, [corpus_copy])
    root = settings.index_dir
    (first,) = read_manifest(root).segments
    before = folder_state(root / "segments" / first.name)
    index, _ = add_document(settings, hashing_embedder, "ferry.txt", STORY)
    manifest = read_manifest(root)
    assert [e.name for e in manifest.segments][0] == first.name and len(manifest.segments) == 2
    new = root / "segments" / manifest.segments[1].name
    assert [json.loads(line)["doc_id"] for line in (new / "passages.jsonl").read_text().splitlines()] == ["ferry"]
    assert np.load(new / "vectors.npy").shape == (1, hashing_embedder.dimension)
    assert manifest.documents["ferry"].segment == new.name
    assert folder_state(root / "segments" / first.name) == before  # the archive's segment was not touched

    index, _ = remove_documents(settings, hashing_embedder, ["001_d33884d0ecc97606"])
    after = read_manifest(root)
    assert [e.name for e in after.segments] == [e.name for e in manifest.segments]  # a removal writes no segment
    assert (
        after.segments[0].deleted == ["001_d33884d0ecc97606"] and folder_state(root / "segments" / first.name) == before
    )
    loaded = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    assert "001_d33884d0ecc97606" not in {p.doc_id for p in loaded.passages} and len(loaded.store) == len(
        loaded.passages
    )


def snapshot(index: Index, embedder) -> dict:
    """What must agree between two indexes of the same documents however they were committed."""
    vectors = {pid: v for ids, batch in index.store.iter_vectors() for pid, v in zip(ids, batch)}
    return {
        "documents": {d: (r.content_hash, r.group) for d, r in index.manifest.documents.items()},
        "passages": sorted((p.passage_id, p.text) for p in index.passages),
        "vectors": {pid: vectors[pid] for pid in sorted(vectors)},
        "bm25": [sorted(index.lexical.search(q, 10**6)) for q in QUERIES],
        # Every row's score (the hashing embedder ties many rows at 0.0, whose order is the rows' order).
        "dense": [dict(index.store.search(embedder.embed([q])[0], 10**6)) for q in QUERIES],
    }


def assert_same(a: dict, b: dict) -> None:
    assert a["documents"] == b["documents"] and a["passages"] == b["passages"]
    assert a["vectors"].keys() == b["vectors"].keys()
    for pid, vector in a["vectors"].items():
        assert np.allclose(vector, b["vectors"][pid], atol=1e-6), pid
    for x, y in zip(a["bm25"], b["bm25"]):
        assert [p for p, _ in x] == [p for p, _ in y] and np.allclose([s for _, s in x], [s for _, s in y], rtol=1e-6)
    for x, y in zip(a["dense"], b["dense"]):
        assert x.keys() == y.keys() and all(abs(x[p] - y[p]) < 1e-6 for p in x)


def test_many_commits_equal_one_big_index(settings, hashing_embedder, corpus_copy, tmp_path):
    """Single-article commits, an update and a removal leave tombstones in older segments; the loaded index
    answers exactly what an index of the same documents built in one commit answers (BM25 over all rows)."""
    stepwise = settings.model_copy(update={"commit_every_articles": 2})
    index_paths(stepwise, hashing_embedder, [corpus_copy])
    (corpus_copy / "000_ff6882ef16d64a7d.txt").write_text(
        "NATO ministers met in Oslo.\n\nThe zebra council approved a striped flag.\n"
    )
    add_document(stepwise, hashing_embedder, "ferry.txt", STORY)
    index_paths(stepwise, hashing_embedder, [corpus_copy])
    remove_documents(stepwise, hashing_embedder, ["002_e0b0d12e770a7305"])
    manifest = read_manifest(settings.index_dir)
    assert len(manifest.segments) >= 4 and any(e.deleted for e in manifest.segments)
    loaded = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)

    (corpus_copy / "002_e0b0d12e770a7305.txt").unlink()
    (corpus_copy / "ferry.txt").write_bytes(STORY)
    at_once = settings.model_copy(update={"index_dir": tmp_path / "one"})
    one, _ = index_paths(at_once, hashing_embedder, [corpus_copy])
    assert len(read_manifest(at_once.index_dir).segments) == 1
    assert_same(snapshot(loaded, hashing_embedder), snapshot(one, hashing_embedder))


def test_optimize_merges_into_one_segment_without_tombstones(settings, hashing_embedder, corpus_copy):
    index_paths(settings.model_copy(update={"commit_every_articles": 2}), hashing_embedder, [corpus_copy])
    add_document(settings, hashing_embedder, "ferry.txt", STORY)
    remove_documents(settings, hashing_embedder, ["000_ff6882ef16d64a7d"])
    before = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    old = {e.name for e in read_manifest(settings.index_dir).segments}
    optimized = optimize_index(settings, hashing_embedder)
    (entry,) = read_manifest(settings.index_dir).segments
    assert not entry.deleted and entry.bm25 and entry.name not in old and entry.passages == len(before.passages)
    loaded = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    assert loaded.lexical._bm25 is not None  # the saved bm25s model, not a rebuild
    assert_same(snapshot(loaded, hashing_embedder), snapshot(before, hashing_embedder))
    assert_same(snapshot(optimized, hashing_embedder), snapshot(before, hashing_embedder))
    assert optimize_index(settings, hashing_embedder).generation == optimized.generation  # nothing left to do


def test_more_segments_than_the_setting_are_merged_after_a_commit(settings, hashing_embedder, corpus_copy, tmp_path):
    capped = settings.model_copy(update={"max_segments": 3})
    for i in range(8):
        add_document(
            capped,
            hashing_embedder,
            f"note{i}.txt",
            f"Note {i}\n\nThe harbour council met {i} times about the ferry.\n".encode(),
        )
        assert len(read_manifest(settings.index_dir).segments) <= 3
    index_paths(capped, hashing_embedder, [corpus_copy])
    loaded = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    assert len(loaded.manifest.documents) == 13 and len(loaded.store) == len(loaded.passages)
    assert not list((settings.index_dir / "segments").glob("tmp-*"))
    assert (
        len(list((settings.index_dir / "segments").iterdir())) <= 3 + 3
    )  # the live ones and the previous generation's


def test_merge_candidates_pick_a_crowded_tier_and_mostly_dead_segments():
    def manifest(sizes: dict[str, tuple[int, int]]) -> Manifest:
        from rag.storage.manifest import DocumentRecord, SegmentEntry

        docs, entries = {}, []
        for name, (written, live) in sizes.items():
            entries.append(SegmentEntry(name=name, documents=written, passages=written * 2))
            for i in range(live):
                docs[f"{name}-{i}"] = DocumentRecord(
                    doc_id=f"{name}-{i}", content_hash="x", passages=2, indexed_at="", segment=name
                )
        return Manifest(
            embedding_model="m",
            dimension=4,
            chunk_size=110,
            chunk_overlap=25,
            vector_backend="faiss",
            documents=docs,
            segments=entries,
        )

    sizes = {"big": (5000, 5000), "a": (1, 1), "b": (1, 1), "c": (1, 1), "mid": (100, 100)}
    assert merge_candidates(manifest(sizes), 5) == set()
    assert merge_candidates(manifest(sizes | {"d": (1, 1)}), 5) == {"a", "b", "c", "d"}
    assert merge_candidates(manifest(sizes | {"d": (1, 1), "dead": (400, 10)}), 5) == {"a", "b", "c", "d", "dead"}
    spread = {"s1": (1, 1), "s2": (10, 10), "s3": (100, 100), "s4": (1000, 1000)}
    assert merge_candidates(manifest(spread), 3) == {"s1", "s2"}  # no tier holds two: the two smallest


def write_format1(index: Index, folder: Path) -> None:
    """An index as format 1 wrote it (rag/storage/index.py before segments): every file in the generation's folder."""
    folder.mkdir(parents=True)
    for name, rows in (("articles.jsonl", index.articles.values()), ("passages.jsonl", index.passages)):
        (folder / name).write_text("".join(r.model_dump_json() + "\n" for r in rows))
    ids, vectors = zip(
        *[(pid, v) for batch_ids, batch in index.store.iter_vectors() for pid, v in zip(batch_ids, batch)]
    )
    flat = FaissStore(index.manifest.dimension, kind="flat", **options())
    flat.apply(add_ids=list(ids), add_vectors=np.stack(vectors), remove_ids=[])
    flat.save(folder)
    LexicalIndex.from_rows(index.lexical.ids, index.lexical.tokens).save(folder)
    Signatures(dict(index.signatures.rows)).save(folder)
    manifest = json.loads(index.manifest.model_dump_json())
    manifest.update(format_version=1, generation=int(folder.name.split("-")[1]))
    for key in ("segments",):
        manifest.pop(key)
    for record in manifest["documents"].values():
        record.pop("segment")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_a_format1_index_loads_and_the_next_write_converts_it(settings, hashing_embedder, corpus_copy, tmp_path):
    reference, _ = index_paths(
        settings.model_copy(update={"index_dir": tmp_path / "ref"}), hashing_embedder, [corpus_copy]
    )
    root = settings.index_dir
    write_format1(reference, root / "gen-000004")
    (root / "CURRENT").write_text("gen-000004")
    old = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    assert old.manifest.format_version == 1 and old.generation == 4
    assert_same(snapshot(old, hashing_embedder), snapshot(reference, hashing_embedder))
    retriever = Retriever(old, hashing_embedder, settings)
    assert retriever.search("NATO Ukraine council", top_k=3)

    index, _ = add_document(settings, hashing_embedder, "ferry.txt", STORY)  # the next write: one segment, format 2
    manifest = read_manifest(root)
    assert manifest.format_version == 2 and manifest.generation == 5 and len(manifest.segments) == 1
    assert {r.segment for r in manifest.documents.values()} == {manifest.segments[0].name}
    loaded = load_index(settings, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension)
    assert len(loaded.manifest.documents) == 6 and len(loaded.store) == len(loaded.passages) == manifest.count
    assert (root / "gen-000004" / "vectors.npy").is_file()  # the old generation is kept for readers, then pruned
    add_document(settings, hashing_embedder, "ferry2.txt", STORY.replace(b"Tuesday", b"Friday"))
    assert not (root / "gen-000004").exists() and len(read_manifest(root).segments) == 2
    assert len(os.listdir(root / "segments")) == 2  # both live; the converted one also named by the previous generation
