"""Peak memory of a command's whole process tree, for the tests that bound what a hostile file may cost."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
# Should a check regress, the command fails at this much address space rather than filling the machine.
ADDRESS_SPACE_GUARD = 16 * GIB
SAMPLE_SECONDS = 0.005


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes: the largest sum of the tree's resident memory seen, or the root's own peak if larger
    seconds: float


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every process below it (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f'/proc/{current}/statm') as statm:
                total += int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
            for task in os.listdir(f'/proc/{current}/task'):
                with open(f'/proc/{current}/task/{task}/children') as children:
                    stack += [int(child) for child in children.read().split()]
        except (OSError, ValueError):  # it ended meanwhile
            continue
    return total


def _own_peak(pid: int) -> int:
    """The peak resident bytes of ``pid``'s program (its ``VmHWM``: since its exec, or since it last wrote 5 to its
    ``/proc/self/clear_refs``; exact between samples)."""
    try:
        with open(f'/proc/{pid}/status') as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith('VmHWM:'))
    except (OSError, StopIteration, ValueError):
        return 0


def run_measured(args: list[str], timeout: float = 120, cwd: str | Path | None = None) -> Measured:
    """Run ``python args...`` (one thread for torch and OpenMP), sampling its process tree's memory until it ends; the
    root's own peak (``VmHWM``) counts where sampling saw less. (Not ``wait4``'s ``ru_maxrss``: Linux keeps in it the
    resident size of the process that forked the child, here the whole test session's.)"""

    def guard() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_GUARD, ADDRESS_SPACE_GUARD))

    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=guard, cwd=cwd, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    output: dict[str, str] = {}
    readers = [threading.Thread(target=lambda name=name, stream=stream: output.update({name: stream.read()}))
               for name, stream in (('out', process.stdout), ('err', process.stderr))]
    for reader in readers:
        reader.start()
    peak = 0
    while True:
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            process.kill()
            raise TimeoutError(f'{args} ran past {timeout} s')
        peak = max(peak, _tree_rss(process.pid), _own_peak(process.pid))
        time.sleep(SAMPLE_SECONDS)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    for reader in readers:
        reader.join()
    return Measured(process.returncode, output['out'], output['err'], peak, time.perf_counter() - start)
