"""Write questions about the reporting of an index's own articles, named by their headlines, for `rag eval`.

For a sample of an index's dated articles with an outlet on record, two questions each:
"Which outlet reported that <headline>?" (must include the outlet) and "When was the article about <headline>
published?" (must include its date), with the article as the gold document. On an archive full of articles on
the same stories (RealTime QA keeps every search result of each quiz question), this measures whether the
provenance path (rag/answer/provenance.py) names the right article among its neighbours, at a scale no hand-written
set reaches. The headline is the article's own, so this tests finding and attributing, not paraphrase.

    .venv/bin/python bench/headline_questions.py build/rtqa-v6 build/headline_questions.jsonl --limit 100 [--skip 100]
    RAG_INDEX_DIR=build/rtqa-v6 .venv/bin/rag eval build/headline_questions.jsonl --mode extractive --out
    build/ev/headlines
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from common import ROOT  # noqa: F401 - puts this checkout's rag on the path

from rag.storage.manifest import read_manifest
from rag.text.timeframe import as_date

# A site's name after the headline ("... - CNNPolitics", "... | Reuters"): not part of what was reported.
_SITE_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]{2,40}$")


def headline(title: str) -> str:
    text = _SITE_SUFFIX.sub("", title.strip()).rstrip(" .?!…")
    return text.replace("...", "").strip()


def questions(index_dir: Path, limit: int, seed: int, skip: int = 0) -> list[dict]:
    manifest = read_manifest(index_dir)
    records = sorted(
        (
            r
            for r in manifest.documents.values()
            if r.title and r.source and as_date(r.date) and len(headline(r.title).split()) >= 5
        ),
        key=lambda r: r.doc_id,
    )
    random.Random(seed).shuffle(records)
    out = []
    for r in records[skip : skip + limit]:
        day = as_date(r.date)
        said = headline(r.title)
        out.append(
            {
                "id": f"{r.doc_id}-outlet",
                "question": f"Which outlet reported that {said}?",
                "answer": r.source,
                "must_include": [[r.source.lower()]],
                "gold_docs": [r.doc_id],
                "type": "headline_outlet",
            }
        )
        out.append(
            {
                "id": f"{r.doc_id}-date",
                "question": f"When was the article about {said} published?",
                "answer": f"{day.day} {day:%B} {day.year}",
                "must_include": [[f"{day.day} {day:%B} {day.year}".lower()]],
                "gold_docs": [r.doc_id],
                "type": "headline_date",
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index_dir", type=Path, nargs="?")
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--limit", type=int, default=100, help="articles sampled (two questions each)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="articles of the sample skipped first: --skip 100 gives a second, disjoint sample",
    )
    parser.add_argument("--smoke", action="store_true", help="questions about 3 articles of the bundled corpus")
    args = parser.parse_args()
    if args.smoke:
        import tempfile

        from common import smoke_index

        work = Path(tempfile.mkdtemp(prefix="bench-headlines-smoke-"))
        args.index_dir, args.out, args.limit = smoke_index(work), work / "questions.jsonl", 3
    if args.index_dir is None or args.out is None:
        parser.error("index_dir and out are required (or --smoke)")
    rows = questions(args.index_dir, args.limit, args.seed, args.skip)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} questions about {len(rows) // 2} articles -> {args.out}")


if __name__ == "__main__":
    main()
