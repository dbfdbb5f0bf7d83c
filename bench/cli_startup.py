"""How fast `scherbelberg --help` starts (goal: at most 0.3 s).

Runs the installed command (or `python -m scherbelberg` without one) a number of times and
reports the median and best wall-clock time, and whether dask, distributed or hcloud were
imported (they must not be: commands import what they need when they run).

    .venv/bin/python bench/cli_startup.py            # 20 runs
    .venv/bin/python bench/cli_startup.py --runs 50
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 0.3
PROBE = (
    "import sys\n"
    "from scherbelberg.cli import main\n"
    "try:\n"
    "    main(['--help'], prog_name='scherbelberg')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('HEAVY', [m for m in ('dask', 'distributed', 'hcloud') if m in sys.modules])\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    venv_command = Path(sys.executable).with_name("scherbelberg")
    command = (
        [str(venv_command)]
        if venv_command.exists()
        else ([found] if (found := shutil.which("scherbelberg")) else None)
    ) or [sys.executable, "-m", "scherbelberg"]
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([*command, "--help"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    heavy = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout.splitlines()[-1]
    median = statistics.median(times)
    print(f"command: {' '.join(command)} --help, {args.runs} runs")
    print(f"median {median:.3f} s, best {min(times):.3f} s, worst {max(times):.3f} s")
    print(f"goal <= {GOAL} s: {'met' if median <= GOAL else 'MISSED'}")
    print(f"heavy modules imported: {heavy.removeprefix('HEAVY ')}")
    return 0 if median <= GOAL and heavy == "HEAVY []" else 1


if __name__ == "__main__":
    sys.exit(main())
