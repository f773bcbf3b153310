"""Measuring the product: the evaluation harness, its scoring and reports, the decision's calibration, SQuAD
reading, and the reader's training script.

Imports: every stage below it (never rag.cli or api).
"""
