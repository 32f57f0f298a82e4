"""Ingest: CloudTrail objects from a trail into the lake's event partitions.

Listing and layout (``layout``), bounded decompression (``decompress``), decoding
(``cloudtrail``, ``scan``), normalisation (``identity``), and the exactly-once pipeline
(``pipeline``: plan, read partitions, stage, commit) with its ledger (``seen_ids``) and
``quarantine``.
"""
