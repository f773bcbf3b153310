"""From retrieved passages to an `Answer`: routing a question, rewriting follow-ups, selecting evidence,
the answer-or-abstain decision, extractive quoting, questions about the reporting itself, and the
pipeline that ties them together.

Imports: rag.core, rag.text, rag.storage, rag.models, rag.search, rag.verify.
"""
