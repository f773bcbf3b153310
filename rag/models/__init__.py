"""The models behind protocols: embedding backends (sentence-transformers, ONNX Runtime) behind one `Embedder`
protocol and factory, the generator (llama.cpp with continuous batching, or an OpenAI-compatible server),
prompt templates, the drafting record, and the trained reader.

Imports: rag.core, rag.text.
"""
