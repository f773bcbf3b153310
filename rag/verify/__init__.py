"""Checking what an answer says against what its sources say: the lexical support primitives, citation
verification and the rendering of verified answers.

Imports: rag.core, rag.text, rag.models.
"""
