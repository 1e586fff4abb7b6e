"""Run a Python script and, at its exit, write its own peak resident memory (VmHWM).

    python bench/measured.py OUT.json SCRIPT [ARGS…]

Why not wait4's ru_maxrss: on Linux that figure survives exec, so a child forked from a
large parent reports the parent's size. VmHWM belongs to the process image after exec.
"""

import atexit
import json
import runpy
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    out, script, *args = sys.argv[1:]
    atexit.register(lambda: Path(out).write_text(json.dumps({"peak_rss_mb": peak_rss_mb()})))
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
