"""Milvus (Lite or a server) as the store: the client connection, the records (passages, articles, signatures)
and dense + BM25 search over them.

Imports: rag.core, rag.text, the rest of rag.storage.
"""
