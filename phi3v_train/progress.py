"""Progress on the main process: a bar with the time left on a terminal, plain lines otherwise.

Training logs one line per log event (``step 20/300 | loss ... | learning_rate ...``) either way; on a
terminal the lines print above a bar over the optimizer steps. Evaluation shows a bar over the records,
or, in a log file, a line at every tenth of them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

from tqdm import tqdm
from transformers import TrainerCallback

Echo = Callable[[str], None]
LINES_PER_EVALUATION = 10


def terminal() -> TextIO | None:
    """Standard output when it is a terminal (bars belong there), else None (a file or a pipe gets lines)."""
    return sys.stdout if sys.stdout.isatty() else None


class TrainingProgress(TrainerCallback):
    """One line per log event (step, loss, learning rate, gradient norm, evaluation loss), under a bar on a terminal."""

    def __init__(self, echo: Echo, bar_stream: TextIO | None = None):
        self.echo = echo
        self.bar_stream = bar_stream
        self.bar: tqdm | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.bar_stream is not None and state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step", desc="training",
                            file=self.bar_stream, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and logs):
            return
        values = " | ".join(f"{key} {_format(value)}" for key, value in logs.items())
        line = f"step {state.global_step}/{state.max_steps} | {values}"
        if self.bar is not None:
            self.bar.write(line, file=self.bar_stream)
        else:
            self.echo(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class RecordProgress:
    """Records done out of ``total``: a bar on a terminal, else a line at every tenth (with the time left)."""

    def __init__(self, total: int, echo: Echo, bar_stream: TextIO | None = None, label: str = "generating"):
        self.total, self.echo, self.label = total, echo, label
        self.done = 0
        self.started = time.monotonic()
        self._tenth_shown = -1
        self.bar = None
        if bar_stream is not None:
            self.bar = tqdm(total=total, unit="record", desc=label, file=bar_stream, dynamic_ncols=True)

    def advance(self, records: int) -> None:
        self.done += records
        if self.bar is not None:
            self.bar.update(records)
            return
        # The first batch says how fast it goes; then a line whenever another tenth is done.
        tenth = LINES_PER_EVALUATION * self.done // max(self.total, 1)
        if tenth > self._tenth_shown:
            self._tenth_shown = tenth
            self.echo(self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        done = f"{self.label}: {self.done}/{self.total} records"
        return f"{done}, {_duration(elapsed)} elapsed, about {_duration(left)} left"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
