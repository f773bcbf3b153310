"""From files, URLs and feeds to committed index generations: reading and cleaning articles, fetching pages
over HTTP, polling feeds, batching passages through the embedder, folding syndicated copies.

Imports: rag.core, rag.text, rag.storage, rag.models.
"""
