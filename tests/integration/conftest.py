"""Real models, built once per session: the MiniLM embedder, FAISS, and the bundled SmolLM2 GGUF."""

from __future__ import annotations


import os

import pytest

from rag.embedder import build_embedder
from rag.generator import build_generator
from rag.indexing import index_paths
from rag.pipeline import Pipeline
from rag.prompts import PromptSet
from rag.settings import Settings

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
def real_generator(real_settings):
    return build_generator(real_settings)


@pytest.fixture(scope="session")
def real_index(real_settings, real_embedder):
    index, _ = index_paths(real_settings, real_embedder, [CORPUS])
    return index


@pytest.fixture(scope="session")
def real_reader(real_settings):
    """The reader `make reader` trains (models/reader). CI has ../shared, so there it must exist."""
    from rag.reader import load_reader

    reader = load_reader(real_settings)
    if reader is None:
        if os.environ.get("CI"):
            pytest.fail("no reader at models/reader under CI: `make reader` should have trained it from ../shared")
        pytest.skip("no reader (make reader trains it from ../shared)")
    return reader


@pytest.fixture(scope="session")
def real_pipeline(real_settings, real_index, real_embedder, real_generator, real_reader) -> Pipeline:
    """As `rag` builds it: with the reader and the decision fitted on its scores."""
    return Pipeline(real_settings, real_index, real_embedder, real_generator, PromptSet.load(), reader=real_reader)
