"""Detect: per-day features, baselines and history, the rule detectors and the
isolation forest, alerts, incidents, and the labelled evaluation.
"""
