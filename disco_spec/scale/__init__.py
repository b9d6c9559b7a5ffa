"""Renders at scale: parameter sweeps (grid or zip) with contact sheets, and the backends that run jobs
(in-process, or on Ray) and merge their parts.

May import: tracking, repro, run, record and everything below them.
"""
