"""The ONNX backend on the real MiniLM: exported here into a temp folder (the path `make onnx` runs), then
compared with the torch embedder on the same sentences and used to build a tiny index."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.errors import IndexMismatchError
from rag.ingest.batches import passage_text_for_embedding
from rag.ingest.indexing import index_paths
from rag.models.embedding import build_embedder
from rag.storage.loading import load_index
from rag.storage.manifest import read_manifest
from tests.conftest import CORPUS

SENTENCES = [
    "What was decided about the NATO-Ukraine Council?",
    "The NATO-Ukraine Commission, which will meet later Thursday, is set to be upgraded to a NATO-Ukraine Council.",
    "short",
    "Ünïcödé naïve café — “quotes”, 1,234.5 km and 12% of GDP in 2023.",
    "The harbour board approved a second pier on Monday after three years of objections from fishermen. " * 8,
]


@pytest.fixture(scope="module")
def onnx_settings(real_settings, tmp_path_factory):
    # Named like the cache folders, so the int8 export reuses the float one beside it as `make onnx` does.
    root = tmp_path_factory.mktemp("onnx")
    return {
        quant: real_settings.model_copy(
            update={
                "embedding_backend": "onnx",
                "embedding_quantization": quant,
                "embedding_onnx_dir": root / f"minilm-{quant}",
                "index_dir": root / f"index-{quant}",
            }
        )
        for quant in ("none", "int8")
    }


@pytest.fixture(scope="module")
def onnx_embedder(onnx_settings):
    return build_embedder(onnx_settings["none"])  # exports: the folder is empty


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_vectors_match_torch(onnx_embedder, torch_embedder):
    assert (onnx_embedder.backend, onnx_embedder.name, onnx_embedder.dimension) == (
        "onnx",
        torch_embedder.name,
        torch_embedder.dimension,
    )
    ours, theirs = onnx_embedder.embed(SENTENCES), torch_embedder.embed(SENTENCES)
    assert _cosines(ours, theirs).min() > 0.999  # the same weights and graph: equal up to float rounding
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # Batched and alone give the same vector: padding in a batch must not leak into a text's pooling.
    assert _cosines(onnx_embedder.embed(SENTENCES[2:3]), ours[2:3]).min() > 0.9999
    assert [onnx_embedder.count_tokens(s) for s in SENTENCES] == [torch_embedder.count_tokens(s) for s in SENTENCES]


def test_int8_vectors_stay_close(onnx_settings, onnx_embedder, torch_embedder):
    int8 = build_embedder(onnx_settings["int8"])
    assert (onnx_settings["int8"].embedding_onnx_dir.parent / "minilm-none" / "model.onnx").is_file()
    assert int8.quantization == "int8"
    # Quantised weights move vectors a little (bench/README.md measures what that does to retrieval).
    assert _cosines(int8.embed(SENTENCES), torch_embedder.embed(SENTENCES)).min() > 0.97


def test_index_built_with_onnx(onnx_settings, onnx_embedder, torch_embedder):
    settings = onnx_settings["none"]
    index, report = index_paths(
        settings, onnx_embedder, [CORPUS / "001_d33884d0ecc97606.txt", CORPUS / "002_e0b0d12e770a7305.txt"]
    )
    assert report.passages_embedded == len(index.passages) > 3
    manifest = read_manifest(settings.index_dir)
    assert (manifest.embedding_backend, manifest.embedding_quantization, manifest.embedding_model) == (
        "onnx",
        "none",
        torch_embedder.name,
    )
    ids, vectors = next(iter(index.store.iter_vectors(len(index.passages))))
    texts = [passage_text_for_embedding(index.passage_by_id[i]) for i in ids]
    assert _cosines(vectors, torch_embedder.embed(texts)).min() > 0.99
    # A torch query embedder reads the onnx-built index (same model) and finds the same top passage.
    torch_view = load_index(settings, embedding_model=torch_embedder.name, dimension=torch_embedder.dimension)
    query = SENTENCES[0]
    top = lambda emb: torch_view.store.search(emb.embed([query])[0], 1)[0]
    assert top(torch_embedder)[0] == top(onnx_embedder)[0]
    # The same vectors, so torch may add to it too (rag/storage/manifest.py, vectors_agree); int8 ones may not.
    index_paths(settings, torch_embedder, [CORPUS / "003_75066b03832c0bdd.txt"])
    assert read_manifest(settings.index_dir).embedding_build == "onnx"
    with pytest.raises(IndexMismatchError, match="embedded with the onnx backend, configured onnx int8"):
        index_paths(settings, build_embedder(onnx_settings["int8"]), [CORPUS / "004_7c186e125f3c4461.txt"])


def test_indexing_batches_match_torch(onnx_settings, onnx_embedder, torch_embedder):
    """More texts than a batch: the indexing path (token-sorted batches, its own session) on passages of mixed
    lengths, up to the 256-token cut, matches torch as the single-question path does."""
    from rag.ingest.corpus import iter_article_paths, load_article
    from rag.text.chunking import chunk_article

    articles = [load_article(path) for path in iter_article_paths([CORPUS])]
    passages = [
        p for a in articles for size in (40, 100, 300) for p in chunk_article(a, chunk_size=size, chunk_overlap=10)
    ]
    texts = [passage_text_for_embedding(p) for p in passages] + SENTENCES * 4
    assert len(texts) > onnx_embedder.batch_size
    theirs = torch_embedder.embed(texts)
    cosines = _cosines(onnx_embedder.embed(texts), theirs)
    assert cosines.min() > 0.9999
    # A text's vector does not depend on its batch: the same text embedded alone.
    assert _cosines(onnx_embedder.embed(texts[:1]), onnx_embedder.embed(texts)[:1]).min() > 0.9999
    int8 = _cosines(build_embedder(onnx_settings["int8"]).embed(texts), theirs)
    assert int8.mean() > 0.99 and int8.min() > 0.97  # bench/README.md: what that does to SQuAD hit@5
