"""What a time measured on this machine depends on, printed beside it by every benchmark script: CPU, usable cores,
GPU, load average, Python and torch, threads, transparent huge pages, date."""
from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return platform.processor() or platform.machine()
    found = re.search(r'^model name\s*:\s*(.+)$', text, re.M)
    return found[1].strip() if found else platform.machine()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def huge_pages() -> str:
    try:
        setting = Path('/sys/kernel/mm/transparent_hugepage/enabled').read_text()
    except OSError:
        return 'unknown'
    found = re.search(r'\[(\w+)\]', setting)
    return found[1] if found else setting.strip()


def machine(threads: int) -> str:
    """One paragraph: what a time measured now depends on."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    return (f'machine: {cpu_model()}, {usable_cores()} usable cores of {os.cpu_count()}; GPU: {gpu}\n'
            f'load average (1, 5, 15 min) now: {load}\n'
            f'python {platform.python_version()}, torch {torch.__version__}, threads per run: {threads} '
            f'(OMP_NUM_THREADS), transparent huge pages: {huge_pages()}\n'
            f'date: {time.strftime("%Y-%m-%d %H:%M %Z")}')
