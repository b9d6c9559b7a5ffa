"""Reproducibility over finished runs: read sources (manifests, run folders, PNGs), diff two of them,
rebuild an image and compare hashes, verify a run folder, and regression renders against goldens.

May import: run, record and everything below them.
"""
