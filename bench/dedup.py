"""The cost of folding syndicated copies at index time, and what it finds, on the RealTime QA archive.

`rag index` runs over the 900 articles (read from ../shared at run time; nothing of it is written into the repo)
with folding on and with it off, in alternating order, and the folding step itself is timed inside the "on"
runs, since on a shared machine two runs of minutes drift by more than the step costs. Then: the groups found,
and the cost of one upload (one article joining the built archive) at the archive's size and at a synthetic
larger one, where the LSH is rebuilt from stored signatures.

    python bench/dedup.py [--rounds 1] [--embedder real|hashing] [--scale 10000] [--limit N]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, print_header, write_json

import rag.ingest.indexing as indexing
from rag.core.settings import Settings
from rag.ingest.corpus import article_from_bytes
from rag.text.syndication import Signatures, fold

RTQA = ROOT.parent / "shared" / "benchmarks" / "realtimeqa-2022-summer" / "corpus"


def build_embedder(kind: str, settings: Settings):
    if kind == "hashing":
        from tests.fakes import HashingEmbedder

        return HashingEmbedder(384)
    from rag.models.embedding import build_embedder as real

    return real(settings)


def index_once(corpus: Path, embedder, fold_on: bool) -> dict:
    spent = {"fold_s": 0.0}
    original = indexing.fold

    def timed_fold(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["fold_s"] += time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, index_dir=Path(tmp) / "index", fold_syndicated=fold_on)
        indexing.fold = timed_fold
        try:
            started = time.perf_counter()
            index, report = indexing.index_paths(settings, embedder, [corpus])
            total = time.perf_counter() - started
        finally:
            indexing.fold = original
        groups: dict[str, list[str]] = {}
        for doc_id, record in index.manifest.documents.items():
            groups.setdefault(record.group or doc_id, []).append(doc_id)
        multi = {g: sorted(m) for g, m in groups.items() if len(m) > 1}
        return {
            "fold": fold_on,
            "total_s": round(total, 2),
            "fold_s": round(spent["fold_s"], 3),
            "documents": len(index.manifest.documents),
            "passages": report.total_passages,
            "groups": len(multi),
            "articles_in_groups": sum(map(len, multi.values())),
            "members": multi,
        }


def upload_cost(texts: dict[str, str], dates: dict[str, str | None], repeats: int = 5) -> float:
    """Median seconds for one article to join an archive whose signatures and groups are already stored (median:
    on a loaded shared host one call in a few takes several times the others)."""
    newcomer = sorted(texts)[len(texts) // 2]
    rest = {d: t for d, t in texts.items() if d != newcomer}
    signatures = Signatures()
    groups = fold(rest, dates, {}, signatures, added=list(rest), broken=[], threshold=0.6)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fold(texts, dates, groups, signatures, added=[newcomer], broken=[], threshold=0.6)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def synthetic_archive(texts: dict[str, str], size: int) -> dict[str, str]:
    """`size` distinct articles of RealTime QA's words and lengths: sentences shuffled across articles."""
    rng = random.Random(5)
    sentences = [s for t in texts.values() for s in t.split(". ") if len(s.split()) > 6]
    lengths = [max(1, len(t.split(". "))) for t in texts.values()]
    return {
        f"syn_{i:06d}": ". ".join(rng.sample(sentences, min(len(sentences), rng.choice(lengths)))) for i in range(size)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--embedder", choices=["real", "hashing"], default="real")
    parser.add_argument("--scale", type=int, default=10000, help="synthetic archive size for the upload cost (0: skip)")
    parser.add_argument("--limit", type=int, default=0, help="index only the first N articles (0: all 900)")
    parser.add_argument("--smoke", action="store_true", help="20 articles, hashing embedder, a 200-article archive")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.embedder, args.scale, args.limit = 1, "hashing", 200, 20
    print_header("dedup: folding syndicated copies on the RealTime QA archive")
    if not RTQA.is_dir():
        raise SystemExit(f"missing {RTQA}")
    embedder = build_embedder(args.embedder, Settings(_env_file=None))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for path in sorted(RTQA.glob("*.txt"))[: args.limit or None]:
            shutil.copy(path, corpus / path.name)
        runs = []
        for r in range(args.rounds):
            for fold_on in (True, False) if r % 2 == 0 else (False, True):
                runs.append(index_once(corpus, embedder, fold_on))
                run = runs[-1]
                print(
                    f"fold {'on ' if fold_on else 'off'}: {run['total_s']:.1f} s for {run['documents']} articles, "
                    f"{run['passages']} passages;"
                    f" folding {run['fold_s']:.2f} s; {run['groups']} groups of {run['articles_in_groups']} articles",
                    flush=True,
                )
    on = [r for r in runs if r["fold"]]
    for group, members in sorted(on[0]["members"].items()):
        print(f"  {group}: {', '.join(members)}")
    articles = {
        p.stem: article_from_bytes(p.stem, p.name, p.read_bytes(), max_bytes=10**8) for p in sorted(RTQA.glob("*.txt"))
    }
    texts = {d: a.text for d, a in articles.items()}
    dates = {d: a.meta.date for d, a in articles.items()}
    uploads = {len(texts): round(upload_cost(texts, dates), 3)}
    if args.scale:
        uploads[args.scale] = round(upload_cost(synthetic_archive(texts, args.scale), {}), 3)
    for size, seconds in uploads.items():
        print(f"one upload joining {size} articles: folding {seconds * 1000:.0f} ms")
    path = write_json(
        "dedup",
        {
            "embedder": args.embedder,
            "runs": [{k: v for k, v in r.items() if k != "members"} for r in runs],
            "groups": on[0]["members"],
            "upload_fold_s": uploads,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
