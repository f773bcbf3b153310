"""Real models, built once per session: the MiniLM embedder, FAISS, and the bundled SmolLM2 GGUF."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import Pipeline
from rag.core.settings import Settings
from rag.ingest.indexing import index_paths
from rag.models.embedding import build_embedder
from rag.models.generator import build_generator
from rag.models.prompts import PromptSet
from tests.conftest import CORPUS


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    return Settings(_env_file=None, index_dir=tmp_path_factory.mktemp("real") / "index", corpus_dir=CORPUS)


@pytest.fixture(scope="session")
def real_embedder(real_settings):
    return build_embedder(real_settings)


@pytest.fixture(scope="session")
def torch_embedder(real_settings):
    """sentence-transformers on torch (RAG_EMBEDDING_BACKEND=torch), the reference the ONNX default is held to."""
    return build_embedder(real_settings.model_copy(update={"embedding_backend": "torch"}))


@pytest.fixture(scope="session")
def real_generator(real_settings):
    return build_generator(real_settings)


@pytest.fixture(scope="session")
def real_index(real_settings, real_embedder):
    index, _ = index_paths(real_settings, real_embedder, [CORPUS])
    return index


@pytest.fixture(scope="session")
def real_reader(real_settings):
    """The opt-in reader `make reader` trains (models/reader); its quality tests skip where it was not built."""
    from rag.models.reader import load_reader, reader_path

    if reader_path(real_settings) is None:
        pytest.skip("no reader at models/reader (opt-in: `make reader` trains it from ../shared)")
    return load_reader(real_settings.model_copy(update={"use_reader": True}))


@pytest.fixture(scope="session")
def real_pipeline(real_settings, real_index, real_embedder, real_generator) -> Pipeline:
    return Pipeline(real_settings, real_index, real_embedder, real_generator, PromptSet.load())
