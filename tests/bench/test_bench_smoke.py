"""The benchmarks run: ``bench/train_throughput.py --tiny`` in every mode and ``bench/eval_speed.py --tiny``.

Each runs as its own process, as a person runs it, and must end with its machine-readable line. The
figures are never checked: benchmarks measure speed, tests do not time anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
RESULT = re.compile(
    rf"RESULT mode=(?P<mode>\S+) attn=(?P<attn>\S+) images_per_s=(?P<images>{NUMBER}) "
    rf"tokens_per_s=(?P<tokens>{NUMBER}) peak_gib=(?P<peak>{NUMBER}) cookbook_ratio=(?P<ratio>{NUMBER}) tiny=1"
)
RATIO = re.compile(rf"RATIO cached-generate (?P<ratio>{NUMBER})")


def run_bench(script: str, *arguments: str) -> subprocess.CompletedProcess:
    # tests/conftest.py has set the shared environment (offline, one thread per op); the child inherits it.
    return subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True, text=True, cwd=REPO_ROOT, env=dict(os.environ), timeout=300, check=False,
    )  # fmt: skip


def last_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("mode", ["full", "frozen-vision", "lora", "qlora"])
def test_train_throughput_tiny_runs_every_mode(mode):
    done = run_bench("train_throughput.py", "--tiny", "--mode", mode, "--steps", "1", "--warmup", "1")
    result = RESULT.fullmatch(last_line(done))
    assert result, done.stdout
    assert (result["mode"], result["attn"]) == (mode, "sdpa")
    assert "figures mean nothing" in done.stdout


def test_train_throughput_refuses_the_cpu_without_tiny():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = run_bench("train_throughput.py", "--mode", "lora")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "GPU" in done.stderr and "--tiny" in done.stderr


def test_eval_speed_tiny_generates_the_same_tokens_both_ways():
    done = run_bench("eval_speed.py", "--tiny", "--new-tokens", "8")
    assert RATIO.fullmatch(last_line(done)), done.stdout
    assert "both gave the same 8 tokens" in done.stdout


@pytest.mark.parametrize(("flags", "name"), [(["--packing"], "packing"), (["--group-by-length"], "group-by-length")])
def test_train_throughput_tiny_compares_batchings(flags, name):
    done = run_bench("train_throughput.py", "--tiny", *flags, "--records", "4", "--micro-batch-size", "2")
    assert re.fullmatch(rf"RATIO {name} {NUMBER}", last_line(done)), done.stdout
    assert "padded, random order" in done.stdout
