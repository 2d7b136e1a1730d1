"""Ctrl-C and SIGTERM: the run finishes its step, saves a resumable checkpoint and stops.

A scheduler's SIGTERM (a preempted job) or one Ctrl-C lets the step in progress finish, then the Trainer
saves a checkpoint as it does every --save-steps and training stops; the caller raises
:class:`~phi3v_train.run_folder.TrainingInterrupted` (exit status 3). A second signal stops at once, and
so does one outside the training loop (data checks, model loading, the final save), where there is no
step to finish: the handler raises KeyboardInterrupt, as Python's own does for Ctrl-C.

With several processes the request is combined across them after every step, so all of them stop after
the same one (a process that stopped alone would leave the others waiting in a collective). A SIGTERM sent
to the whole process group (as SLURM's scancel does) reaches the data-loader workers too, which would die
of it and fail the step being finished: :class:`WorkersLeaveSigtermToTraining` keeps them alive.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal(TrainerCallback):
    """Turns the first SIGINT/SIGTERM during training into "save a checkpoint after this step, then stop"."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.signal_name = "Ctrl-C"
        """The signal that asked to stop (Python's own KeyboardInterrupt when no handler was installed)."""
        self.requested = False
        self.stopped_after: int | None = None
        """The step after which training stopped on a signal, or None."""
        self._in_training_loop = False
        self._pid = os.getpid()

    @contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        """Handle the signals while the block runs (only the main thread may install handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {number: signal.signal(number, self._on_signal) for number in STOPPING_SIGNALS}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _on_signal(self, number: int, frame) -> None:
        if os.getpid() != self._pid:
            return  # a data-loader worker forked from this process: the training process decides
        self.signal_name = signal.Signals(number).name
        if self._in_training_loop and not self.requested:
            self.requested = True  # acted on at the end of the step; printing here could re-enter a print
            return
        raise KeyboardInterrupt

    def on_train_begin(self, args, state, control, **kwargs):
        self._in_training_loop = True

    def on_train_end(self, args, state, control, **kwargs):
        self._in_training_loop = False

    def on_step_end(self, args, state, control, **kwargs):
        # Every process takes part in the combination at every step, whatever it received.
        requested = _requested_anywhere(self.requested)
        if not requested or control.should_training_stop:
            return  # the last step ends the run anyway, and saves the model
        if not self.requested:
            self.signal_name = "a signal to another process of the run"
        self.requested = True
        self.stopped_after = state.global_step
        control.should_save = True
        control.should_training_stop = True
        self.echo(
            f"{self.signal_name}: saving a checkpoint after step {state.global_step} and stopping "
            "(signal again to stop at once)"
        )


def _requested_anywhere(requested: bool) -> bool:
    """Whether any process of the run was asked to stop."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return requested
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([int(requested)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class WorkersLeaveSigtermToTraining:
    """The collator, as run in each data-loader worker: the worker leaves its first SIGTERM to the training process.

    The training process finishes its step, saves and shuts its workers down; a second SIGTERM (the loader's
    own terminate, should a worker not stop) ends the worker. The handler is installed on the first batch
    a worker collates, after torch installed its own: only code the worker runs can replace it.
    """

    def __init__(self, collate: Callable[[list[Any]], Any]):
        self.collate = collate
        self._training_pid = os.getpid()
        self._installed_in: int | None = None

    def __call__(self, examples: list[Any]) -> Any:
        if os.getpid() not in (self._training_pid, self._installed_in):
            self._installed_in = os.getpid()
            signal.signal(signal.SIGTERM, _leave_the_first_to_training)
        return self.collate(examples)


def _leave_the_first_to_training(number: int, frame) -> None:
    signal.signal(number, signal.SIG_DFL)  # the next one ends the worker
