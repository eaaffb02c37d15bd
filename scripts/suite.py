"""``make test``'s pytest step: the whole suite as two pytest processes side by side, or one with arguments.

The browser tests (marker ``browser``: one shared Chromium, WebKit, several ``tsunagu serve`` nodes) spend
most of their time waiting on pages, media and timers: run alone they used under a quarter of this 2-core
box, the other tests about a third. Run side by side, the suite took 449 s instead of 680 s here, and the
browser half still has its one Chromium. The browser half's output is shown as it runs; the other half's is
kept in a file and shown when it ends, so the two never interleave.

With arguments (``make test PYTEST_ARGS="-k login"``) it is one plain pytest run of those arguments.
Either way the exit status is pytest's: non-zero when a half fails or collects nothing (5).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PYTEST = [sys.executable, "-m", "pytest"]
BROWSER = ["-m", "browser"]
# The second process leaves pytest's cache (last failures) to the first, so that they never write it at once.
OTHERS = ["-m", "not browser", "-p", "no:cacheprovider"]
HALF_WITHIN_SECONDS = 60 * 60  # pytest-timeout stops each test long before; this bounds a hung process


def run_halves(paths: Sequence[str] = ()) -> int:
    """Both halves (of ``paths``, default: the configured ``tests``); the first non-zero status, else 0."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tsunagu-suite-") as folder:
        log = Path(folder) / "others.log"
        with log.open("wb") as output:
            others = subprocess.Popen([*PYTEST, *OTHERS, *paths], stdout=output, stderr=subprocess.STDOUT)
            try:
                browser = subprocess.run([*PYTEST, *BROWSER, *paths], timeout=HALF_WITHIN_SECONDS).returncode
                others_status = others.wait(timeout=HALF_WITHIN_SECONDS)
            finally:
                if others.poll() is None:
                    others.kill()
                    others.wait()
        print("\n---- the tests not marked browser (run alongside the browser tests) ----", flush=True)
        sys.stdout.buffer.write(log.read_bytes())
    elapsed = time.monotonic() - started
    print(f"\nsuite: the browser tests exit {browser}, the others {others_status}; {elapsed:.0f} s")
    return browser or others_status


def main(args: list[str]) -> int:
    if args:
        return subprocess.run([*PYTEST, *args]).returncode
    return run_halves()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
