"""The embedding backend setting, where the ONNX export lives, and the index manifest's record of the build.
No model is loaded here: the real ONNX export is tests/integration/test_onnx_embedder.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from rag.core.errors import IndexMismatchError, ModelMissingError
from rag.core.settings import Settings
from rag.ingest.indexing import index_paths, reindex, remove_documents
from rag.models.embedding import build_embedder, embedder_build
from rag.models.onnx.embedder import OnnxEmbedder, default_onnx_root, onnx_dir_for
from rag.models.onnx.export import export_onnx
from rag.storage.loading import load_index
from rag.storage.manifest import read_manifest
from tests.fakes import HashingEmbedder


class OnnxLikeEmbedder(HashingEmbedder):
    """Hashing vectors under another build's name: what the index records is the embedder's (backend, quantization)."""

    def __init__(self, backend: str = "onnx", quantization: str = "int8"):
        super().__init__(128)
        self.backend = backend
        self.quantization = quantization


@pytest.fixture
def clean_rag_env(monkeypatch, tmp_path):
    for key in [k for k in os.environ if k.startswith("RAG_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no developer .env


def test_backend_settings_parse_from_the_environment(clean_rag_env, monkeypatch):
    assert (Settings().embedding_backend, Settings().embedding_quantization) == ("onnx", "none")
    monkeypatch.setenv("RAG_EMBEDDING_BACKEND", "onnx")
    monkeypatch.setenv("RAG_EMBEDDING_QUANTIZATION", "int8")
    monkeypatch.setenv("RAG_EMBEDDING_ONNX_DIR", "/models/minilm-int8")
    settings = Settings()
    assert (settings.embedding_backend, settings.embedding_quantization, settings.embedding_onnx_dir) == (
        "onnx",
        "int8",
        Path("/models/minilm-int8"),
    )
    monkeypatch.setenv("RAG_EMBEDDING_BACKEND", "tensorrt")
    with pytest.raises(ValidationError, match="embedding_backend"):
        Settings()


def test_int8_without_onnx_is_refused_with_a_clear_line(clean_rag_env, monkeypatch, tmp_path):
    with pytest.raises(ValidationError, match="needs RAG_EMBEDDING_BACKEND=onnx"):
        Settings(embedding_backend="torch", embedding_quantization="int8")
    from rag.cli.main import app

    monkeypatch.setenv("RAG_EMBEDDING_BACKEND", "torch")
    monkeypatch.setenv("RAG_EMBEDDING_QUANTIZATION", "int8")
    result = CliRunner().invoke(app, ["info"])
    assert "invalid setting: Value error, RAG_EMBEDDING_QUANTIZATION=int8 needs RAG_EMBEDDING_BACKEND=onnx" in str(
        result.exception
    )
    assert "RAG_:" not in str(result.exception)  # a cross-field check names no single field


def _fake_model(folder: Path, weights: bytes = b"w" * 10) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_export_folder_is_named_by_model_weights_and_quantization(clean_rag_env, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = _fake_model(tmp_path / "gt_pkg" / "model")
    plain = onnx_dir_for(Settings(embedding_backend="onnx"), model)
    int8 = onnx_dir_for(Settings(embedding_backend="onnx", embedding_quantization="int8"), model)
    assert plain.parent == int8.parent == default_onnx_root() == tmp_path / "cache" / "newsrag" / "onnx"
    assert plain.name.startswith("gt_pkg-") and plain.name.endswith("-none") and int8.name.endswith("-int8")
    assert plain.name.removesuffix("-none") == int8.name.removesuffix("-int8")
    (model / "model.safetensors").write_bytes(b"other weights, other size")
    assert onnx_dir_for(Settings(embedding_backend="onnx"), model) != plain  # never a stale export of old weights
    configured = Settings(embedding_backend="onnx", embedding_onnx_dir=tmp_path / "mine")
    assert onnx_dir_for(configured, model) == tmp_path / "mine"


def test_missing_export_that_cannot_be_made_names_the_make_target(clean_rag_env, tmp_path):
    model = tmp_path / "no-weights" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")  # a folder without weights: nothing to export from
    settings = Settings(embedding_backend="onnx", embedding_model_path=model, embedding_onnx_dir=tmp_path / "onnx")
    with pytest.raises(ModelMissingError, match=r"make onnx") as caught:
        build_embedder(settings)
    assert str(model) in str(caught.value)
    assert not (tmp_path / "onnx" / "model.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".onnx.tmp")]  # no half-made export left


def test_export_is_a_no_op_when_the_file_is_there(tmp_path):
    target = tmp_path / "done"
    target.mkdir()
    (target / "model.onnx").write_bytes(b"made earlier")
    # The source does not even exist: an existing export is used as it is, without touching torch.
    assert export_onnx(tmp_path / "nowhere", target) == target
    assert (target / "model.onnx").read_bytes() == b"made earlier"


def test_onnx_embedder_without_files_says_how_to_make_them(tmp_path):
    with pytest.raises(ModelMissingError, match="no ONNX embedding model at .*make onnx"):
        OnnxEmbedder(tmp_path / "empty", name="m")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a model")
    (broken / "tokenizer.json").write_text(
        json.dumps(
            {"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[PAD]": 0, "[UNK]": 1}, "unk_token": "[UNK]"}}
        )
    )
    with pytest.raises(ModelMissingError, match="cannot load the ONNX embedding model"):
        OnnxEmbedder(broken, name="m")


def test_manifest_records_the_build_and_old_manifests_read_as_torch(settings, corpus_copy):
    emb = OnnxLikeEmbedder()
    index_paths(settings, emb, [corpus_copy])
    manifest = read_manifest(settings.index_dir)
    assert (manifest.embedding_backend, manifest.embedding_quantization, manifest.embedding_build) == (
        "onnx",
        "int8",
        "onnx int8",
    )
    assert embedder_build(object()) == ("torch", "none")  # an embedder that does not say is the default build
    path = settings.index_dir / (settings.index_dir / "CURRENT").read_text() / "manifest.json"
    raw = json.loads(path.read_text())
    del raw["embedding_backend"], raw["embedding_quantization"]  # as written before these fields existed
    path.write_text(json.dumps(raw))
    assert read_manifest(settings.index_dir).embedding_build == "torch"


def test_torch_and_float_onnx_serve_and_extend_each_others_index(settings, corpus_copy):
    """torch and the float ONNX export make the same vectors, so either serves and extends the other's index;
    the manifest keeps naming the build that made it."""
    torch_settings = settings.model_copy(update={"embedding_backend": "torch", "embedding_quantization": "none"})
    onnx_settings = settings.model_copy(update={"embedding_backend": "onnx", "embedding_quantization": "none"})
    torch_like, onnx_like = OnnxLikeEmbedder("torch", "none"), OnnxLikeEmbedder("onnx", "none")
    index_paths(torch_settings, torch_like, [corpus_copy])
    loaded = load_index(onnx_settings, embedding_model=onnx_like.name, dimension=onnx_like.dimension)
    assert loaded.manifest.embedding_build == "torch" and len(loaded.passages) > 0
    extra = corpus_copy / "zz_new.txt"
    extra.write_text("A new story\n\nThe harbour board approved a second pier on Monday.\n")
    index_paths(onnx_settings, onnx_like, [extra])
    manifest = read_manifest(settings.index_dir)
    assert "zz_new" in manifest.documents and manifest.embedding_build == "torch"


def test_int8_and_float_vectors_refuse_each_other_in_one_line(settings, corpus_copy):
    float_settings = settings.model_copy(update={"embedding_backend": "onnx", "embedding_quantization": "none"})
    int8_settings = settings.model_copy(update={"embedding_backend": "onnx", "embedding_quantization": "int8"})
    torch_settings = settings.model_copy(update={"embedding_backend": "torch", "embedding_quantization": "none"})
    int8, plain = OnnxLikeEmbedder("onnx", "int8"), OnnxLikeEmbedder("onnx", "none")
    index_paths(int8_settings, int8, [corpus_copy])
    generation = read_manifest(settings.index_dir).generation
    for other in (float_settings, torch_settings):  # serving: refused at load, with the settings that would fit
        with pytest.raises(IndexMismatchError) as refused:
            load_index(other, embedding_model=plain.name, dimension=plain.dimension)
        assert "\n" not in str(refused.value)
        assert "vectors by the onnx int8 embedding build" in str(refused.value)
        assert "RAG_EMBEDDING_QUANTIZATION=int8" in str(refused.value)
    extra = corpus_copy / "zz_new.txt"
    extra.write_text("A new story\n\nThe harbour board approved a second pier on Monday.\n")
    with pytest.raises(IndexMismatchError, match="embedded with the onnx int8 backend, configured onnx"):
        index_paths(int8_settings, plain, [extra])  # adding float vectors to int8 ones
    assert read_manifest(settings.index_dir).generation == generation  # nothing written
    # Removing embeds nothing, so it is allowed; the index stays an int8 build.
    first = sorted(read_manifest(settings.index_dir).documents)[0]
    remove_documents(int8_settings, plain, [first])
    assert read_manifest(settings.index_dir).embedding_build == "onnx int8"
    # A rebuild re-embeds everything, and the index becomes the configured build.
    reindex(float_settings, plain, rebuild=True)
    assert read_manifest(settings.index_dir).embedding_build == "onnx"
    assert len(load_index(float_settings, embedding_model=plain.name, dimension=plain.dimension).passages) > 0


def test_info_warns_when_the_configured_backend_differs(clean_rag_env, monkeypatch, tmp_path):
    from rag.cli.main import app

    settings = Settings(_env_file=None, index_dir=tmp_path / "index")
    index_paths(settings, OnnxLikeEmbedder("torch", "none"), [Path(__file__).resolve().parents[3] / "data" / "corpus"])
    same = CliRunner().invoke(app, ["--index-dir", str(tmp_path / "index"), "info", "--json"])
    assert (
        same.exit_code == 0
        and "warning" not in json.loads(same.output)
        and json.loads(same.output)["embedding_backend"] == "torch"
    )
    monkeypatch.setenv("RAG_EMBEDDING_BACKEND", "onnx")
    monkeypatch.setenv("RAG_EMBEDDING_QUANTIZATION", "int8")
    other = CliRunner().invoke(app, ["--index-dir", str(tmp_path / "index"), "info", "--json"])
    warning = json.loads(other.output)["warning"]
    assert "onnx int8 backend, the index by torch" in warning and "rag reindex --rebuild" in warning


def test_onnx_vectors_come_back_in_input_order(tmp_path):
    """embed() sorts by length for padding; a fake session shows each row lands where its text was."""

    class Session:
        def run(self, _outputs, feed):
            lengths = feed["attention_mask"].sum(1).astype(np.float32)
            return [np.stack([lengths, np.ones_like(lengths)], axis=1)]

    emb = OnnxEmbedder.__new__(OnnxEmbedder)
    from tokenizers import Tokenizer

    vocab = {"[PAD]": 0, "[UNK]": 1, "a": 2}
    tok = Tokenizer.from_str(
        json.dumps(
            {
                "version": "1.0",
                "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
                "pre_tokenizer": {"type": "Whitespace"},
            }
        )
    )
    emb._tokenizer, emb._pad_id, emb.batch_size, emb.threads, emb.query_threads = tok, 0, 2, 1, 1
    emb._sessions = {(1, True): Session()}
    texts = ["a", "a a a a", "a a", "a a a a a a", "a a a"]
    assert emb.embed(texts)[:, 0].tolist() == [1, 4, 2, 6, 3]


def test_token_batches_group_similar_lengths_within_the_budget():
    from rag.models.onnx.embedder import token_batches

    lengths = np.array([5, 256, 130, 12, 128, 131, 3])
    batches = token_batches(lengths, max_rows=3, budget=300)
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))  # every row once
    assert [lengths[b].tolist() for b in batches] == [[256], [131, 130], [128, 12], [5, 3]]  # longest first
    assert all(len(b) * lengths[b[0]] <= 300 or len(b) == 1 for b in batches)
    assert [len(b) for b in token_batches(np.array([4] * 7), max_rows=3)] == [3, 3, 1]  # short texts: max_rows caps


def test_a_configured_folder_holding_another_quantization_is_refused(clean_rag_env, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"float export")
    (folder / "export.json").write_text(json.dumps({"quantization": "none"}))
    model = _fake_model(tmp_path / "pkg" / "model")
    settings = Settings(
        embedding_backend="onnx", embedding_quantization="int8", embedding_model_path=model, embedding_onnx_dir=folder
    )
    with pytest.raises(
        ModelMissingError, match="holds the none ONNX export, configured RAG_EMBEDDING_QUANTIZATION=int8"
    ):
        build_embedder(settings)
