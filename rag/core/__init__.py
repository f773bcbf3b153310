"""The vocabulary every stage shares: `Settings` (the one pydantic-settings object, prefix RAG_), the typed
errors the edges map to HTTP codes and CLI lines, and the data types a question and an article travel as
(`Article` -> `Passage` -> `ScoredPassage` -> `Evidence` -> `Answer` with `Citation`s).

Imports: nothing else of rag.
"""
