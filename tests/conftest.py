from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.core.settings import Settings
from rag.models.prompts import PromptSet
from tests.fakes import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
SHARED = ROOT.parent / "shared"
TEST_HOSTS = ["testserver", "test"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Explicit values so a developer's .env or RAG_* variables never change what a test sees. The host names
    # are the ones Starlette's TestClient and httpx's ASGITransport send; the guard refuses unknown names.
    return Settings(
        _env_file=None,
        index_dir=tmp_path / "index",
        corpus_dir=CORPUS,
        rewrite_with_model=False,
        allowed_hosts=TEST_HOSTS,
    )


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


@pytest.fixture
def prompts() -> PromptSet:
    return PromptSet.load()


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target
