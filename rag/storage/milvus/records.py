"""`RAG_STORE=milvus`: the whole index in Milvus, so `rag serve` replicas keep no state of their own.

Two collections (the prefix is RAG_MILVUS_STORE_PREFIX):
    <prefix>_passages  one row per passage: id, doc id, the content hash of its article's version, span, text,
                       BM25 tokens (raw, and as an analysed VARCHAR that Milvus's BM25 function turns into a
                       sparse vector), the dense vector
    <prefix>_articles  an article's record (row "<doc_id>/0": title, outlet, date, url, content hash, group,
                       passage count, MinHash signature) and its cleaned text, in pieces ("<doc_id>/1", ...);
                       and one row "~live": the index's settings, a generation number and a stamp that every
                       commit replaces, which is how a replica learns that another one wrote
A write upserts passages first and the record last, so the record is the commit marker: an article is live when
its record is there and exactly `passages` passages carry the record's content hash. A writer killed half way
leaves rows no record names; running it again upserts the same ids (passage id = "<doc_id>#<n>"), so two writers
of one file, or a rerun, converge to one copy. A delete removes the record first, then the passages.

Milvus offers no transaction across rows, so a reader can load while a write is half done: it then sees the
article's previous version or none, never a mixture, and the next request reloads once the stamp moved on.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import numpy as np

from rag.core.errors import IndexMissingError
from rag.core.settings import Settings
from rag.core.types import Article, ArticleMeta, Passage
from rag.storage.index import Index
from rag.storage.manifest import DocumentRecord, Manifest, now_utc
from rag.storage.milvus.client import WRITE_BATCH
from rag.storage.milvus.collections import MilvusRecords
from rag.storage.milvus.rows import LIVE_KEY, article_rows, passage_row
from rag.storage.milvus.search import CALL_TIMEOUT_S, RecordLexical, RecordVectors, in_expr
from rag.text.syndication import Signatures

if TYPE_CHECKING:
    from rag.storage.manifest import ChangeSet


def load_stored(settings: Settings) -> Index:
    """The index in Milvus, read with the embedding model and dimension it was built with (`rag info`, migrate)."""
    records = MilvusRecords(settings, None)
    live = records.live_row()
    if live is None:
        raise IndexMissingError(
            f"no index in Milvus at {records.uri} ({records.articles}): build one with `rag index data/corpus`"
        )
    manifest = Manifest.model_validate_json(live["manifest"])
    records.dimension = manifest.dimension
    return MilvusRecordStore(settings, records).load(
        embedding_model=manifest.embedding_model, dimension=manifest.dimension
    )


class MilvusRecordStore:
    """IndexStore over MilvusRecords. Writers need no lock between machines: every write is an idempotent upsert
    or delete keyed by passage and document id, and the live row is replaced last."""

    def __init__(self, settings: Settings, records: MilvusRecords | None = None):
        self.settings = settings
        self._records = records

    def records(self, dimension: int, index: Index | None = None) -> MilvusRecords:
        """The connection: the one the index was loaded through, when it was, else a new one."""
        if self._records is None:
            held = index.store if index is not None and isinstance(index.store, RecordVectors) else None
            self._records = held.records if held is not None else MilvusRecords(self.settings, dimension)
        return self._records

    # --- reading --------------------------------------------------------------------------------------------
    def load(self, *, embedding_model: str, dimension: int, missing_ok: bool = False) -> Index:
        records = self.records(dimension)
        live = records.live_row()
        if live is None:
            if not missing_ok:
                raise IndexMissingError(
                    f"no index in Milvus at {records.uri} ({records.articles}): build one with `rag index data/corpus`"
                )
            # vector_backend faiss: an empty in-memory stand-in, replaced by the Milvus search below, never a second
            # store opened.
            empty = self.settings.model_copy(update={"vector_backend": "faiss"})
            index = Index.empty(self.settings.index_dir, empty, embedding_model=embedding_model, dimension=dimension)
            index.manifest.vector_backend = "milvus"
            return self._attach(index, records, stamp=None)
        manifest = Manifest.model_validate_json(live["manifest"])
        manifest.check_compatible(
            embedding_model=embedding_model,
            dimension=dimension,
            settings=self.settings.model_copy(update={"vector_backend": "milvus"}),
        )
        heads: dict[str, dict] = {}
        pieces: dict[str, dict[int, str]] = {}
        later: list[dict] = []
        for row in records.scan(records.articles, ["doc_id", "piece", "body", "record"]):
            if row["doc_id"]:
                if row["piece"] == 0:
                    heads[row["doc_id"]] = json.loads(row["record"])
                    pieces.setdefault(row["doc_id"], {})[0] = row["body"]
                else:
                    later.append(row)
        for row in later:  # a further piece counts only when it belongs to the version the record names
            head = heads.get(row["doc_id"])
            if head is not None and row["record"] == head["record"]["content_hash"]:
                pieces[row["doc_id"]][row["piece"]] = row["body"]
        found: dict[str, list[dict]] = {}
        for row in records.scan(
            records.passages, ["passage_id", "doc_id", "content_hash", "ordinal", "start", "end", "text", "tokens"]
        ):
            head = heads.get(row["doc_id"])
            if head is not None and row["content_hash"] == head["record"]["content_hash"]:
                found.setdefault(row["doc_id"], []).append(row)
        articles: dict[str, Article] = {}
        passages: list[Passage] = []
        tokens: list[list[str]] = []
        signatures: dict[str, np.ndarray] = {}
        manifest.documents = {}
        for doc_id in sorted(heads):
            head, rows, parts = heads[doc_id], sorted(found.get(doc_id, []), key=lambda r: r["ordinal"]), pieces[doc_id]
            record = DocumentRecord.model_validate(head["record"])
            if (
                len(rows) != record.passages
                or len(parts) < head["pieces"]
                or any(n not in parts for n in range(head["pieces"]))
            ):
                # a write of it is in flight or was killed: its previous version is gone, the rerun completes it
                continue
            meta = ArticleMeta.model_validate(head["meta"])
            articles[doc_id] = Article(
                doc_id=doc_id,
                path=head.get("path"),
                text="".join(parts[n] for n in range(head["pieces"])),
                meta=meta,
                content_hash=record.content_hash,
            )
            manifest.documents[doc_id] = record
            for row in rows:
                passages.append(
                    Passage(
                        passage_id=row["passage_id"],
                        doc_id=doc_id,
                        ordinal=row["ordinal"],
                        text=row["text"],
                        start=row["start"],
                        end=row["end"],
                        meta=meta,
                    )
                )
                tokens.append(row["tokens"].split())
            if head.get("signature") is not None:
                signatures[doc_id] = np.asarray(head["signature"], dtype=np.uint32)
        manifest.count = len(passages)
        lexical = RecordLexical.from_rows([p.passage_id for p in passages], tokens)
        index = Index(
            self.settings.index_dir,
            manifest,
            articles,
            passages,
            RecordVectors(records),
            lexical,
            Signatures(signatures),
        )
        return self._attach(index, records, stamp=live["stamp"])

    def _attach(self, index: Index, records: MilvusRecords, *, stamp: str | None) -> Index:
        """Point the index's search at Milvus and remember which state of the store it shows."""
        if not isinstance(index.store, RecordVectors):
            index.store = RecordVectors(records)
        if not isinstance(index.lexical, RecordLexical):
            index.lexical = RecordLexical.from_rows(index.lexical.ids, index.lexical.tokens)
        index.store.stamp = stamp
        index.store.groups = {d: r.group for d, r in index.manifest.documents.items()}
        index.lexical.records = records
        return index

    def is_stale(self, index: Index) -> bool:
        """The live row's stamp is not the one `index` was loaded at: another replica committed (one key read)."""
        held = index.store if isinstance(index.store, RecordVectors) else None
        return held is None or self.records(index.manifest.dimension, index).stamp() != held.stamp

    def refresh(self, index: Index) -> Index | None:
        if not self.is_stale(index):
            return None
        return self.load(
            embedding_model=index.manifest.embedding_model, dimension=index.manifest.dimension, missing_ok=True
        )

    # --- writing --------------------------------------------------------------------------------------------
    def commit(self, index: Index, change: ChangeSet) -> Index:
        records = self.records(index.manifest.dimension, index)
        written = {a.doc_id for a in change.articles}
        gone = sorted(set(change.removed) - written)
        if gone:
            # The records first: once they are gone no reader counts the articles, whatever passages are left.
            records.delete(records.articles, in_expr("doc_id", gone))
            records.delete(records.passages, in_expr("doc_id", gone))
        vectors = np.asarray(
            change.vectors if change.vectors is not None else np.zeros((0, index.manifest.dimension)), dtype=np.float32
        )
        records.upsert(
            records.passages,
            [
                passage_row(p, t, v, index.articles[p.doc_id].content_hash)
                for p, t, v in zip(change.passages, change.tokens, vectors)
            ],
        )
        heads = []
        for article in change.articles:
            rows = article_rows(
                article, index.manifest.documents[article.doc_id], index.signatures.rows.get(article.doc_id)
            )
            records.upsert(records.articles, rows[1:])
            heads.append(rows[0])
        regrouped = [
            d
            for d, r in index.manifest.documents.items()
            if d not in written and index.store.groups.get(d, r.group) != r.group
        ]
        heads += [
            article_rows(index.articles[d], index.manifest.documents[d], index.signatures.rows.get(d))[0]
            for d in regrouped
        ]
        records.upsert(records.articles, heads)  # the commit marker of each article written
        for article in (a for a in change.articles if a.doc_id in change.removed):  # what is left of a replaced version
            doc, version = json.dumps(article.doc_id), json.dumps(article.content_hash)
            records.delete(records.passages, f"doc_id == {doc} and content_hash != {version}")
            records.delete(records.articles, f"doc_id == {doc} and piece > 0 and record != {version}")
        return self._publish(index, records)

    def _publish(self, index: Index, records: MilvusRecords) -> Index:
        """Replace the live row: a new generation and stamp, which tells every replica to reload."""
        manifest = index.manifest
        previous = records.live_row()
        manifest.generation = max(manifest.generation, previous["generation"] if previous else 0) + 1
        manifest.count = len(index.passages)
        manifest.vector_backend = "milvus"
        manifest.vector_kind = "milvus"
        manifest.updated_at = now_utc()
        settings_only = manifest.model_copy(update={"documents": {}, "segments": []})
        stamp = uuid.uuid4().hex
        live = {"generation": manifest.generation, "stamp": stamp, "manifest": settings_only.model_dump_json()}
        records.upsert(
            records.articles,
            [
                {
                    "key": LIVE_KEY,
                    "doc_id": "",
                    "piece": 0,
                    "body": "",
                    "record": json.dumps(live),
                    "unused_vector": [0.0, 0.0],
                }
            ],
        )
        # Not marked as showing `stamp`: another replica may have committed since this index was loaded, even
        # between the read of the live row above and this write (Milvus has no compare-and-set), and this index
        # lacks that commit. So a server reloads once after its own write rather than miss another's.
        return self._attach(index, records, stamp=None)

    def rewrite(self, index: Index) -> Index:
        """The whole of `index` into empty collections (`rag migrate --store milvus`), vectors copied, not
        re-embedded."""
        from rag.storage.segments import vectors_of

        records = self.records(index.manifest.dimension)
        records.drop()
        ids = [p.passage_id for p in index.passages]
        vectors = vectors_of(index.store, ids) if ids else np.zeros((0, index.manifest.dimension), dtype=np.float32)
        tokens = index.lexical.tokens_of(ids)
        records.upsert(
            records.passages,
            [
                passage_row(p, t, v, index.articles[p.doc_id].content_hash)
                for p, t, v in zip(index.passages, tokens, vectors)
            ],
        )
        rows = [
            row
            for d, record in index.manifest.documents.items()
            for row in article_rows(index.articles[d], record, index.signatures.rows.get(d))
        ]
        records.upsert(records.articles, rows)
        index.store = RecordVectors(records)
        return self.compact(self._publish(index, records))

    def compact(self, index: Index) -> Index:
        """Seal what the commit wrote. Milvus merges its own segments, but searches rows not yet flushed far more
        slowly (Milvus Lite: 200 ms instead of 4 ms for a dense search over 4,000 passages, BM25 340 ms instead of
        15 ms), and a server flushes on its own only after a while. Rows a killed writer left are not swept here:
        on a shared store they may be another replica's write in flight; `optimize` sweeps them."""
        records = self.records(index.manifest.dimension, index)
        for name in (records.passages, records.articles):
            records.call(records.client.flush, name, timeout=CALL_TIMEOUT_S)
        return index

    def optimize(self, index: Index) -> Index:
        """Delete passages and text pieces no live record names (left by killed writers). Run it when no write
        is in flight: a replica's upload between its passages and its record would lose its passages."""
        records = self.records(index.manifest.dimension, index)
        live = {d: index.articles[d].content_hash for d in index.manifest.documents}
        stale = [
            r["passage_id"]
            for r in records.scan(records.passages, ["passage_id", "doc_id", "content_hash"])
            if live.get(r["doc_id"]) != r["content_hash"]
        ]
        for start in range(0, len(stale), WRITE_BATCH):
            records.delete(records.passages, in_expr("passage_id", stale[start : start + WRITE_BATCH]))
        orphans = [
            r["key"]
            for r in records.scan(records.articles, ["key", "doc_id", "piece", "record"])
            if r["doc_id"] and (r["doc_id"] not in live or (r["piece"] > 0 and r["record"] != live[r["doc_id"]]))
        ]
        for start in range(0, len(orphans), WRITE_BATCH):
            records.delete(records.articles, in_expr("key", orphans[start : start + WRITE_BATCH]))
        return index
