"""Syndicated copies at index time: which articles fold together, and the groups kept right as the index changes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.ingest.corpus import article_from_bytes
from rag.ingest.indexing import index_paths, remove_documents
from rag.text.sentences import split_sentences
from rag.text.syndication import FILE, Signatures, fold, jaccard, shingles
from tests.conftest import CORPUS
from tests.syndication import OUTLETS, doc_id_of, write_stories

HERALD, WIRE, BAYTIMES = (doc_id_of(o) for o in OUTLETS)


def groups_of(index) -> dict[str, str | None]:
    return {d: r.group for d, r in index.manifest.documents.items()}


def test_bundled_corpus_folds_nothing(settings, hashing_embedder, corpus_copy):
    """Five NATO articles, several on the Ukraine-NATO council, are different stories: each is its own group."""
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    assert len(index.manifest.documents) == 5
    assert groups_of(index) == {d: d for d in index.manifest.documents}
    assert index.manifest.fold_threshold == settings.syndication_threshold


def _lightly_edited(raw: str, seed: int, sentences: int = 1) -> str:
    """Another outlet's copy: its own boilerplate around the story, long sentences reworded (every fourth word
    changed and the ending replaced, which leaves none of their shingles)."""
    rng = random.Random(seed)
    spans = [s for s in split_sentences(raw) if len(raw[s[0] : s[1]].split()) >= 12]
    for start, end in sorted(rng.sample(spans, sentences), reverse=True):
        words = raw[start:end].split()
        raw = (
            raw[:start]
            + " ".join(w + "ly" if i % 4 == 1 else w for i, w in enumerate(words[:-3]))
            + " as officials said."
            + raw[end:]
        )
    return (
        "Sign up for our morning newsletter.\n\n"
        + raw
        + "\n\nCopyright 2023 The Evening Courier. All rights reserved.\n"
    )


def test_each_bundled_article_folds_with_its_light_edit_and_with_no_other_article(settings):
    """The threshold on all five bundled articles, not one example: a copy with new boilerplate and a long
    sentence rewritten through (0.71-1.0) reaches it; a different article on the same topic is nowhere near (0.002)."""
    raws = {p.stem: p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))}
    texts = {d: article_from_bytes(d, d + ".txt", raw.encode(), max_bytes=10**7).text for d, raw in raws.items()}
    for n, (doc_id, raw) in enumerate(raws.items()):
        texts[f"copy_{doc_id}"] = article_from_bytes(
            "c", "c.txt", _lightly_edited(raw, n).encode(), max_bytes=10**7
        ).text
    groups = fold(texts, {}, {}, Signatures(), added=list(texts), broken=[], threshold=settings.syndication_threshold)
    for doc_id in raws:
        assert groups[doc_id] == groups[f"copy_{doc_id}"], doc_id
    assert len({groups[d] for d in raws}) == len(raws)


def test_three_outlets_fold_into_one_group_led_by_the_earliest(settings, hashing_embedder, corpus_copy, tmp_path):
    stories = write_stories(tmp_path / "stories")
    index, report = index_paths(settings, hashing_embedder, [corpus_copy, *stories])
    assert not report.skipped  # near-duplicates are accepted, unlike exact ones
    groups = groups_of(index)
    assert groups[HERALD] == groups[WIRE] == groups[BAYTIMES] == HERALD  # 2024-02-06, the earliest
    assert groups["selwyn_tidal"] == "selwyn_tidal"  # same topic, different story
    assert (index.root / "segments" / index.manifest.segments[-1].name / FILE).is_file()


def test_copies_arriving_one_at_a_time_in_any_order_make_the_same_groups(
    settings, hashing_embedder, corpus_copy, tmp_path
):
    stories = write_stories(tmp_path / "stories")
    together, _ = index_paths(settings, hashing_embedder, [corpus_copy, *stories])
    one_by_one = settings.model_copy(update={"index_dir": tmp_path / "other"})
    for path in [corpus_copy, *reversed(stories)]:
        index, _ = index_paths(one_by_one, hashing_embedder, [path])
    assert groups_of(index) == groups_of(together)


def test_removing_the_representative_promotes_the_next_copy(settings, hashing_embedder, corpus_copy, tmp_path):
    index_paths(settings, hashing_embedder, [corpus_copy, *write_stories(tmp_path / "stories")])
    index, _ = remove_documents(settings, hashing_embedder, [HERALD])
    groups = groups_of(index)
    assert HERALD not in groups
    assert groups[WIRE] == groups[BAYTIMES] == WIRE
    index, _ = remove_documents(settings, hashing_embedder, [WIRE])
    assert groups_of(index)[BAYTIMES] == BAYTIMES  # alone again


def test_an_updated_copy_that_is_no_longer_a_copy_leaves_the_group(settings, hashing_embedder, corpus_copy, tmp_path):
    folder = tmp_path / "stories"
    index_paths(settings, hashing_embedder, [corpus_copy, *write_stories(folder)])
    (folder / f"{WIRE}.md").write_text(
        "---\nsource: Northern Wire\ndate: 2024-02-07\n---\n\n"
        + " ".join(f"Unrelated sentence number {i} about the weather." for i in range(40))
    )
    index, report = index_paths(settings, hashing_embedder, [folder])
    assert report.updated == [WIRE]
    groups = groups_of(index)
    assert groups[WIRE] == WIRE and groups[HERALD] == groups[BAYTIMES] == HERALD


def _words(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_a_group_linked_only_through_a_removed_copy_splits():
    """A chain A~B~C with A and C too far apart: the group holds while B is there and splits when B goes."""
    core, extra, more = _words("k", 200), _words("d", 60), _words("e", 80)
    texts = {"a": core, "b": f"{core} {extra}", "c": f"{core} {extra} {more}"}
    assert (
        jaccard(shingles(texts["a"]), shingles(texts["c"])) < 0.6 <= jaccard(shingles(texts["b"]), shingles(texts["c"]))
    )
    signatures = Signatures()
    groups = fold(texts, {}, {}, signatures, added=list(texts), broken=[], threshold=0.6)
    assert set(groups.values()) == {"a"}
    del texts["b"]
    after = fold(texts, {}, groups, signatures, added=[], broken=["a", "c"], threshold=0.6)
    assert after == {"a": "a", "c": "c"}
    assert set(signatures.rows) == {"a", "c"}


def test_boilerplate_pages_too_short_to_be_a_story_never_fold():
    form = (
        "How relevant is this ad to you? Video player was slow to load content. Video content never loaded. Ad froze."
    )
    groups = fold({"x": form, "y": form}, {}, {}, Signatures(), added=["x", "y"], broken=[], threshold=0.6)
    assert groups == {"x": "x", "y": "y"}


def test_folding_off_keeps_no_groups_and_turning_it_on_groups_the_index(
    settings, hashing_embedder, corpus_copy, tmp_path
):
    stories = write_stories(tmp_path / "stories")
    off = settings.model_copy(update={"fold_syndicated": False})
    index, _ = index_paths(off, hashing_embedder, [corpus_copy, *stories])
    assert set(groups_of(index).values()) == {None} and index.manifest.fold_threshold is None
    index, report = index_paths(settings, hashing_embedder, [corpus_copy, *stories])  # nothing changed but the setting
    assert report.regrouped and report.passages_embedded == 0
    assert groups_of(index)[BAYTIMES] == HERALD


def test_a_new_threshold_regroups_on_the_next_write(settings, hashing_embedder, corpus_copy, tmp_path):
    stories = write_stories(tmp_path / "stories")
    index_paths(settings, hashing_embedder, [corpus_copy, *stories])
    strict = settings.model_copy(update={"syndication_threshold": 0.8})  # Herald~Wire 0.84 only
    index, report = index_paths(strict, hashing_embedder, [corpus_copy, *stories])
    assert report.regrouped and index.manifest.fold_threshold == 0.8
    groups = groups_of(index)
    assert groups[WIRE] == HERALD and groups[BAYTIMES] == BAYTIMES


@pytest.mark.parametrize("broken", ["garbage", "shape"])
def test_unreadable_signatures_are_a_corrupt_index(tmp_path: Path, broken: str):
    import numpy as np

    from rag.core.errors import IndexCorruptError

    if broken == "garbage":
        (tmp_path / FILE).write_bytes(b"not an npz")
    else:
        np.savez(
            tmp_path / FILE,
            ids=np.array(["a", "b"]),
            signatures=np.zeros((1, 3), dtype=np.uint32),
            scheme=np.array("affine32"),
        )
    with pytest.raises(IndexCorruptError):
        Signatures.load(tmp_path)


def test_a_scan_of_stored_signatures_finds_what_the_lsh_finds(monkeypatch):
    """Uploads scan the signature matrix band by band; batches use MinHashLSH: the same candidates either way."""
    import rag.text.syndication as dedup

    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))}
    texts |= {f"copy_{d}": _lightly_edited(t, n) for n, (d, t) in enumerate(texts.items())}
    signatures = Signatures()
    for doc_id, text in texts.items():
        signatures.compute(doc_id, shingles(text))
    live = sorted(texts)

    def found(limit: int) -> dict[str, set[str]]:
        monkeypatch.setattr(dedup, "SCAN_LIMIT", limit)
        return {d: set(c) for d, c in dedup._candidates(live, live, signatures, 0.6)}

    by_lsh, by_scan = found(0), found(len(live))
    assert by_lsh == by_scan
    assert all(f"copy_{d}" in by_lsh[d] for d in texts if not d.startswith("copy_"))
