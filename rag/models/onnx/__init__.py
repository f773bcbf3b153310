"""MiniLM through ONNX Runtime: the exported graph's files and cache folder, the export itself (the one place that
imports torch, on request), and the embedder that runs it with `tokenizers` alone.
"""
