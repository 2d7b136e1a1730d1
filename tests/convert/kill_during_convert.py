"""Run a conversion and ``kill -9`` it at a chosen moment: a subprocess for the resume tests.

    python kill_during_convert.py SOURCE INPUT OUT WORKERS MOMENT

MOMENT is one of:

- ``replace:K``: SIGKILL this process just before its K-th atomic rename, when the file is fully
  written under its temporary name (with one worker every write happens in this process, so the
  moment is exact);
- ``item:N``: SIGKILL the whole process group, workers included, once N items are reported done;
- ``cleanup``: SIGKILL after ``manifest.json`` is written, before the work folder is removed;
- ``worker:KEY``: the worker converting the item KEY SIGKILLs itself (as the OOM killer would);
  the run then stops, and this script exits 3 with the runner's message.

Start it in a new session, so that the process group it kills is its own.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from phi3v_data.converters import registry, workdir
from phi3v_data.converters.runner import ConversionError, run_conversion


def die() -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


class KillAfterItems:
    def __init__(self, count: int) -> None:
        self.left = count

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self) -> None:
        self.left -= 1
        if self.left == 0:
            die()


def main() -> None:
    source, input_dir, out_dir, workers, moment = sys.argv[1:]
    kind, _, number = moment.partition(":")
    progress = None
    if kind == "replace":
        real_replace, calls = os.replace, [0]

        def replace_or_die(source_path: str, target_path: str) -> None:
            calls[0] += 1
            if calls[0] == int(number):
                die()
            real_replace(source_path, target_path)

        os.replace = replace_or_die
    elif kind == "item":
        progress = KillAfterItems(int(number))
    elif kind == "cleanup":
        workdir.WorkDir.remove = lambda self: die()
    converter = registry.load_converter(source)
    if kind == "worker":
        # Patched on the class: forked workers inherit it (a patched instance would not pickle).
        convert_item = type(converter).convert_item

        def convert_or_die(self, item, input_dir, options):
            if item.key == number:
                os.kill(os.getpid(), signal.SIGKILL)
            return convert_item(self, item, input_dir, options)

        type(converter).convert_item = convert_or_die
    try:
        run_conversion(
            converter, Path(input_dir), Path(out_dir), converter.Options(), workers=int(workers), progress=progress
        )
    except ConversionError as error:
        print(error, file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
