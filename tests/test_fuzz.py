"""The fuzz run of `vidihand convert` (tests/fuzz_convert.py) in a child process, bounded in time
and memory: every damaged bag, forged field or odd command line ends in a valid dataset or one
line with exit 2; the child's peak RSS stays under `MAX_RSS_MB` and it finishes in `TIMEOUT_S`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = 40  # per strategy and bag kind: 200 conversions, about 30 s here
TIMEOUT_S = 600
MAX_RSS_MB = 1500
REPO = Path(__file__).resolve().parents[1]


def test_every_fuzzed_input_gives_a_valid_dataset_or_one_line(tmp_path: Path) -> None:
    log = tmp_path / "fuzz.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz_convert", "--examples", str(EXAMPLES)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + TIMEOUT_S
    while True:  # wait4, not wait: the child's own peak RSS, not that of every child so far
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.kill(child.pid, signal.SIGKILL)
            os.wait4(child.pid, 0)
            raise AssertionError(f"the fuzz run did not finish in {TIMEOUT_S} s (a hang?)")
        time.sleep(0.2)
    child.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text()
    assert child.returncode == 0, output[-6000:]
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    assert peak_mb < MAX_RSS_MB, f"fuzz run peaked at {peak_mb:.0f} MB"
