"""Deterministic synthetic CloudTrail trails for development, demos, tests and benchmarks.

``generate_tree`` writes a tree in the native S3 layout (log files by delivery date, hourly
digest files) for a fictional organisation whose KMS traffic has realistic rhythms, identities
and quirks, with labelled attacks and decoys in ``labels.json``.
"""

from analytics.generator.tree import GenerateSummary, generate_tree

__all__ = ["GenerateSummary", "generate_tree"]
