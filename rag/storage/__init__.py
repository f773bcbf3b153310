"""Where an index lives: the manifest and its generations, crash-safe local segments, FAISS and BM25 inside
them, the store boundary that opens either the local segments or Milvus (`storage/milvus/`), and migration
between the two.

Imports: rag.core, rag.text.
"""
