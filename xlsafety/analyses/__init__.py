"""Analyses of a fitted study: JSR intervals, uncertainty, English-worse configurations,
cross-lingual gaps, dimensionality and held-out predictive validation.

Each module contains one family of analyses as functions on the matrix cells
(`results/matrix/{judge}/cells.parquet`), the prompts and the long IRT
parameter table, and returns pandas frames. The workflow's `scripts/analysis_*.py`
write those frames and the figures drawn by `xlsafety.analyses.figures`.
"""
