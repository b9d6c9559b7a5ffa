"""What a run leaves behind for later: the manifest and its content-addressed id, the PNG text chunks
that make one image rebuildable alone, and the environment fingerprint.

May import: spec, plan (and the foundation modules errors, atomic). Never torch at import time.
"""
