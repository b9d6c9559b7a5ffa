"""The animation stage's pure building blocks for DD 5.2's 2D / 3D / Video Input / turbo / VR modes
(disco.py:1027 (do_run)):
2D and 3D warps, turbo blending, VR eye views, ffmpeg video in/out, over uint8 RGB arrays [H, W, 3].

May import: engine, models, plan, spec (and the foundation modules errors, atomic). The frame loop is run.frames.
"""
