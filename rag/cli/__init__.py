"""The `rag` command: one module per command group, each turning typed errors into one clean line.

Imports: anything in rag.
"""
