"""The animation frame loop (DD 5.2: disco.py:1027-1138 (do_run)): 2D, 3D (with turbo and VR) and Video Input.

Called by run.loop.run_plan when plan.animation_mode != "None". Each frame is one plan item rendered
by the same diffusion call as a still (run.diffuse.diffuse_item), with the frame's init:

* frame 0 (2D/3D): like a still (init image if any);
* frame f ≥ 1 (2D/3D): the previous frame's pure diffusion result (DD's prevFrame.png, kept as the same
  8-bit image DD round-trips through PNG) warped with the frame's motion values — 2D with warp_2d, 3D with
  a depth estimate and warp_3d;
* Video Input: extracted video frame f+1 (frames are extracted once, into the run folder's video_frames/);
* perlin_init replaces every init (engine.item.item_init).

3D turbo follows DD (disco.py:1102-1127 (do_run)) exactly with the plan's `diffuse`/`turbo_blend`; VR writes both
eye views after every
saved 3D frame (disco.py:1407-1408 (do_run)). Depth models are loaded once per render (DD rebuilds AdaBins per
call, Q11).

Everything a frame leaves for the next one is a uint8 image, written under state/ when it is not the saved
frame itself, so that `render(..., resume=True)` continues byte-identically (see animation.resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from ..errors import RenderError
from .journal import STATE_DIR, Journal
from .video_input import video_frame_path, video_module

if TYPE_CHECKING:
    import torch

    from ..plan.resolve import Plan, PlanItem
    from .diffuse import DiffusionSetup
    from .records import Observer, OutputRecord, RenderResult
    from .request import PreparedRun, RenderRequest


# ---------------------------------------------------------------------------------------------
# Which items are computed
# ---------------------------------------------------------------------------------------------


def sequential(plan: Plan) -> bool:
    """2D/3D frames depend on the previous frame; Video Input frames (and stills) stand alone."""
    return plan.animation_mode in ("2D", "3D")


def items_to_compute(plan: Plan, selected: Sequence[int]) -> list[PlanItem]:
    """The items a render of `selected` must compute: in 2D/3D every frame up to the last selected one."""
    if not selected:
        return []
    if sequential(plan):
        return list(plan.items[: max(selected) + 1])
    return [plan.items[i] for i in selected]


# ---------------------------------------------------------------------------------------------
# Video Input preparation
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _u8(img: Image.Image) -> np.ndarray:
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy


def _read_u8(path: Path) -> np.ndarray:
    from ..record.image_bounds import open_image_bounded

    with open_image_bounded(path) as im:  # a run folder's image: size and pixels bounded before decoding
        return _u8(im)


class Animation:
    """One render's animation: models and per-run settings; run() renders the frames. 3D loads its depth
    models here, from run.spec_dir, downloading missing weights when request.trust.fetch allows."""

    def __init__(self, result: RenderResult, run: PreparedRun, request: RenderRequest, setup: DiffusionSetup) -> None:
        self.result = result
        self.spec = result.spec
        self.plan = result.plan
        self.setup = setup
        self.device = setup.device
        self.selected = list(run.selected)
        self.save = set(self.selected)
        self.seq = items_to_compute(self.plan, self.selected)
        mode = self.plan.animation_mode
        self.turbo = mode == "3D" and bool(self.spec.turbo.turbo_mode)
        self.vr = mode == "3D" and bool(self.spec.vr.vr_mode)
        self.depth_models = None
        if mode == "3D":
            from ..models.depth import load_depth_models

            self.depth_models = load_depth_models(
                self.spec.camera_3d, self.device, spec_dir=run.spec_dir,
                verify_each_time=self.spec.models.check_model_SHA, fetch=request.trust.fetch,
            )
            dm = self.depth_models
            extra = getattr(dm, "weights", None)
            if extra is None:
                extra = [w for w in (getattr(dm, "midas_weights", None), getattr(dm, "adabins_weights", None)) if w is not None]
            result.weights = list(result.weights) + list(extra)

    # -- helpers ---------------------------------------------------------------------------------

    def depth(self, img_u8: np.ndarray) -> torch.Tensor:
        from ..models.depth import estimate_depth

        return estimate_depth(self.depth_models, img_u8, float(self.spec.camera_3d.midas_weight), self.device)

    def warp(self, img_u8: np.ndarray, item: PlanItem) -> np.ndarray:
        m = item.motion or {}
        if self.plan.animation_mode == "2D":
            from ..animation.warp2d import warp_2d

            return warp_2d(img_u8, m["angle"], m["zoom"], m["translation_x"], m["translation_y"])
        from ..animation.warp3d import warp_3d

        c = self.spec.camera_3d
        return warp_3d(img_u8, self.depth(img_u8), m, c.fov, c.near_plane, c.far_plane, c.padding_mode, c.sampling_mode)

    def _write_png(self, arr: np.ndarray, rel: str, item: PlanItem | None) -> None:
        from .images import write_png_atomic
        from .records import png_metadata

        meta = png_metadata(self.result, item) if item is not None else None
        write_png_atomic(Image.fromarray(arr, "RGB"), Path(self.result.run_dir) / rel, meta)

    def _save_frame(self, item: PlanItem, out_u8: np.ndarray, observers: Sequence[Observer]) -> list[OutputRecord]:
        """Write the frame (and its VR eye views) and record them; returns the records."""
        from .records import record_output

        self._write_png(out_u8, item.output, item)
        recs = [record_output(self.result, observers, item.output, "image", item)]
        if self.vr:
            from ..animation.vr import eye_file_names, eye_views

            c, v = self.spec.camera_3d, self.spec.vr
            left, right = eye_views(out_u8, self.depth, v.vr_eye_angle, v.vr_ipd, c.fov, c.near_plane, c.far_plane,
                                    c.padding_mode, c.sampling_mode)
            for rel, arr in zip(eye_file_names(self.plan.batch_name, item.frame), (left, right)):
                rel = Path(rel).as_posix()
                self._write_png(arr, rel, item)
                recs.append(record_output(self.result, observers, rel, "vr_eye", item))
        return recs

    def _state_files(self, item: PlanItem, prev: np.ndarray, old: np.ndarray | None, out_u8: np.ndarray | None) -> dict[str, str]:
        """Keep what the next frame needs; the saved frame doubles as prevFrame when it is the same image."""
        state: dict[str, str] = {}
        if out_u8 is not None and np.array_equal(out_u8, prev):
            state["prev_frame"] = item.output
        else:
            rel = f"{STATE_DIR}/prev_frame_{item.frame:04d}.png"
            self._write_png(prev, rel, None)
            state["prev_frame"] = rel
        if old is not None:
            rel = f"{STATE_DIR}/old_warp_{item.frame:04d}.png"
            self._write_png(old, rel, None)
            state["old_warp"] = rel
        return state

    def _diffuse(self, item: PlanItem, init_u8: np.ndarray | None, init_tensor: torch.Tensor | None,
                 observers: Sequence[Observer]) -> tuple[np.ndarray, list[OutputRecord]]:
        from ..engine.images import pil_to_pm1
        from .diffuse import diffuse_item

        previous = init_tensor
        if previous is None and init_u8 is not None:
            previous = pil_to_pm1(Image.fromarray(init_u8, "RGB")).to(self.device)
        final, partials = diffuse_item(self.result, item, self.setup, observers, previous=previous,
                                       save=item.index in self.save)
        return _u8(final), partials

    # -- run -------------------------------------------------------------------------------------

    def run(self, journal: Journal, observers: Sequence[Observer]) -> None:
        if sequential(self.plan):
            self._run_sequential(journal, observers)
        else:
            self._run_video_input(journal, observers)
        self._encode_videos(observers)

    def _replay(self, recs: Sequence[OutputRecord], observers: Sequence[Observer]) -> None:
        from .records import publish_output

        for rec in recs:
            publish_output(self.result, observers, rec)

    def _run_video_input(self, journal: Journal, observers: Sequence[Observer]) -> None:
        from .images import load_init_image

        for item in self.seq:
            done = journal.verified_records(item) if journal.resumed else None
            if done is not None:
                self._replay(done, observers)
                continue
            path = video_frame_path(self.result.run_dir, int(item.init["video_frame"]))
            init = load_init_image(str(path), self.plan.width, self.plan.height, inputs=None).to(self.device)
            out_u8, partials = self._diffuse(item, None, init, observers)
            recs = partials + self._save_frame(item, out_u8, observers)
            journal.append(item, recs)

    def _run_sequential(self, journal: Journal, observers: Sequence[Observer]) -> None:
        seq = self.seq
        k, done = 0, []
        if journal.resumed:
            while k < len(seq):
                recs = journal.verified_records(seq[k])
                if recs is None:
                    break
                done.append(recs)
                k += 1
        prev: np.ndarray | None = None
        old: np.ndarray | None = None
        while k > 0:  # the state the first frame to render starts from
            paths = journal.state_paths(seq[k - 1]) or {}
            try:
                prev = _read_u8(paths["prev_frame"])
                old = _read_u8(paths["old_warp"]) if "old_warp" in paths else None
                break
            except (KeyError, OSError, ValueError):
                k -= 1
                done.pop()
        journal.keep_only(it.index for it in seq[:k])
        for recs in done[:k]:
            self._replay(recs, observers)

        from ..animation import turbo as turbo_mod

        turbo_n = int(self.spec.turbo.turbo_steps)
        preroll = int(self.spec.turbo.turbo_preroll)
        tstate = None
        if self.turbo and k > 0:
            tstate = turbo_mod.TurboState(prev_frame=prev, old_warp=old)
        for item in seq[k:]:
            f = item.frame
            saved = item.index in self.save
            recs: list[OutputRecord] = []
            if self.turbo and f > 0:  # disco.py:1397-1403 (do_run)
                assert tstate is not None
                tf = turbo_mod.turbo_prepare(f, tstate, lambda im: self.warp(im, item), preroll=preroll, steps=turbo_n)
                if tf.diffuse != item.diffuse:
                    raise RenderError(f"frame {f}: the plan and the turbo schedule disagree on diffusing it (a bug)")
                if not tf.diffuse:  # skipped: the blend is saved, the new warp is the next "previous frame"
                    tstate, out_u8 = tf.state, tf.output
                    partials: list[OutputRecord] = []
                else:
                    diffused, partials = self._diffuse(item, tf.init, None, observers)
                    out_u8, tstate = turbo_mod.turbo_finish(tf, diffused, steps=turbo_n)  # saved blended (Q21)
                prev, old = tstate.prev_frame, tstate.old_warp
            else:
                init_u8 = self.warp(prev, item) if f > 0 else None  # prev: DD's prevFrame.png
                diffused, partials = self._diffuse(item, init_u8, None, observers)
                prev = out_u8 = diffused
                if self.turbo:  # frame 0
                    tstate = turbo_mod.turbo_start(diffused, preroll=preroll)
                    old = tstate.old_warp
            recs = list(partials)
            if saved:
                recs += self._save_frame(item, out_u8, observers)
            journal.append(item, recs, self._state_files(item, prev, old, out_u8 if saved else None))

    # -- videos ----------------------------------------------------------------------------------

    def _encode_videos(self, observers: Sequence[Observer]) -> None:
        """`{batch_name}.mp4` (and the VR video) when video.skip_video_for_run_all is false and every frame was rendered."""
        v = self.spec.video
        if v.skip_video_for_run_all or sorted(self.selected) != list(range(self.plan.n_items)):
            return
        from .records import record_output

        video = video_module()
        rd = Path(self.result.run_dir)
        last = self.plan.items[-1]
        kw = dict(init_frame=v.init_frame, last_frame=v.last_frame)

        def encode(frames: list[Path], name: str) -> None:
            video.encode_mp4(frames, rd / name, v.fps, v.crf, **kw)
            rec_item = last
            record_output(self.result, observers, name, "video", rec_item)

        encode([rd / it.output for it in self.plan.items], f"{self.plan.batch_name}.mp4")
        if self.vr:
            from ..animation.vr import eye_file_names

            names = [eye_file_names(self.plan.batch_name, it.frame) for it in self.plan.items]
            if v.vr_layout == "per_eye":
                encode([rd / n[0] for n in names], f"{self.plan.batch_name}_vr_l.mp4")
                encode([rd / n[1] for n in names], f"{self.plan.batch_name}_vr_r.mp4")
            else:
                import shutil
                import tempfile

                tmp = Path(tempfile.mkdtemp(prefix=".vr-frames.", dir=rd))
                try:
                    frames = []
                    for i, n in enumerate(names):
                        sbs = video.side_by_side(_read_u8(rd / n[0]), _read_u8(rd / n[1]))
                        frames.append(tmp / f"{i:04d}.png")
                        Image.fromarray(sbs, "RGB").save(frames[-1], format="PNG")
                    encode(frames, f"{self.plan.batch_name}_vr.mp4")
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
