"""From a question to scored passages: hybrid dense + BM25 retrieval with date filters, recency and
syndicated-copy folding, and the date periods the CLI and API accept.

Imports: rag.core, rag.text, rag.storage, rag.models.
"""
