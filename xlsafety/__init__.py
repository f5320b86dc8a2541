"""xlsafety: a reproducible study of why LLM safety guardrails degrade across languages.

The package contains all logic of the Snakemake workflow: dataset loading, model
preparation, generation, judging, response-matrix assembly, IRT estimation and
the summary. The workflow's scripts only read Snakemake's inputs and call it.
"""

__version__ = "0.1.0"
