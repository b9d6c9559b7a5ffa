"""Console progress: one bar per image/frame (step, it/s, ETA) on stderr, with the latest losses."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .records import BaseObserver, OutputRecord, RenderResult, StepEvent


class ProgressObserver(BaseObserver):
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.item = -1

    def on_step(self, event: StepEvent) -> None:
        if event.item.index != self.item:
            self._close()
            self.item = event.item.index
            label = f"image {event.item.batch_index}" if event.item.frame == 0 else f"frame {event.item.frame}"
            self.bar = tqdm(total=event.total, desc=label, unit="step", file=self.stream, leave=True, dynamic_ncols=True)
        assert self.bar is not None
        losses = {k.split("/")[-1]: v for k, v in event.stats.items() if k.startswith("clip_loss/")}
        if losses:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()}, refresh=False)
        self.bar.update(1)

    def on_output(self, result: RenderResult, record: OutputRecord) -> None:
        if record.kind == "image" and self.bar is not None:
            self.bar.write(f"wrote {result.run_dir / record.path}", file=self.stream)

    def on_end(self, result: RenderResult) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
