"""Animation building blocks for DD 5.2's 2D / 3D / Video Input / turbo / VR modes (reference §7).

Small pure functions, no hidden state and no random draws: the 2D OpenCV warp (`warp2d`), the 3D
depth-and-camera warp (`warp3d`), turbo blending (`turbo`), VR eye views (`vr`) and ffmpeg video
extraction/encoding (`video`).  Images cross these functions as uint8 RGB arrays [H, W, 3] — what DD
round-trips through its PNG files.  The frame loop that strings them together lives in `frames`.
"""
