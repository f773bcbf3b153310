"""Text in, text facts out, no models and no storage: sentence splitting, chunking, web-boilerplate cleaning,
dates written in text and the time a question asks about, outlets, answer types of questions, the one
tokenizer and stemmer, the one name and number pattern, and near-duplicate (syndicated copy) signatures.

Imports: rag.core.
"""
