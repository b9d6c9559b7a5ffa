"""The run stage: `render()` turns a spec into a run folder: the item and frame loops, input files,
atomic outputs, the resume journal, observers and progress.

May import: animation, engine, models, record, plan, spec (and the foundation modules errors, atomic).
"""
