"""One run of a comparison (see :mod:`hat_arch.yolo.compare`), in a process of its own:
``python -m hat_arch.yolo.compare_run '<spec as JSON>'``.

Trains the spec's model with its seed, or resumes the run from its ``last.pt``, or, if that run finished but its
record was never written, validates its ``best.pt``; then writes the record ``hat_compare.json``.
"""
from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hat_arch.errors import HatError, report_user_errors
from hat_arch.yolo.compare import EPOCH_TIMES, RESULT
from hat_arch.yolo.cost import count_gflops
from hat_arch.atomic_write import write_json_atomic


def peak_memory(device: torch.device) -> tuple[int, str]:
    """The run's peak memory in bytes and what it counts: the CUDA allocator's peak reservation on a GPU, else the
    process's peak resident set (and its data-loader workers', whichever is larger)."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_reserved(device), 'CUDA reserved'
    kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return kib * 1024, 'process RSS'


def epoch_timer(times_file: Path, times: dict[str, float]) -> dict[str, Any]:
    """Callbacks that record each training epoch's seconds (without validation) in ``times_file`` as it ends."""
    started = {}

    def start(trainer) -> None:
        started['at'] = time.perf_counter()

    def end(trainer) -> None:
        times[str(trainer.epoch)] = time.perf_counter() - started.pop('at')
        write_json_atomic(times_file, times)

    return {'on_train_epoch_start': start, 'on_train_epoch_end': end}


def next_step(last: Path) -> tuple[str, Any]:
    """What a run with this ``last.pt`` needs, and that checkpoint's model: 'train' (no epoch saved yet),
    'resume' (an unfinished run: Ultralytics keeps the optimizer until the last epoch) or 'validate' (a finished
    run, its optimizer stripped, whose record was not written)."""
    from ultralytics import YOLO

    if not last.is_file():
        return 'train', None
    previous = YOLO(str(last))
    return ('validate' if previous.ckpt.get('optimizer') is None else 'resume'), previous


def run(spec: dict[str, Any]) -> None:
    from ultralytics import YOLO

    import hat_arch.yolo  # noqa: F401  (registers HAT and the shipped names)

    folder = Path(spec['folder'])
    last, best, times_file = folder / 'weights' / 'last.pt', folder / 'weights' / 'best.pt', folder / EPOCH_TIMES
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}
    arguments = {'data': spec['data'], 'imgsz': spec['imgsz'], **spec['train_args']}
    step, previous = next_step(last)
    if step == 'validate':
        model = YOLO(str(best if best.is_file() else last))
        metrics = model.val(**arguments, project=str(folder), name='val', exist_ok=True)
    else:
        if step == 'resume':
            model, arguments = previous, {'resume': True}
        else:
            model = YOLO(spec['model'])
            times.clear()  # an earlier attempt that saved no epoch
            arguments.update(epochs=spec['epochs'], seed=spec['seed'], project=str(folder.parent), name=folder.name,
                             exist_ok=True)
        for event, callback in epoch_timer(times_file, times).items():
            model.add_callback(event, callback)
        metrics = model.train(**arguments)
    results = {k: float(v) for k, v in metrics.results_dict.items()}
    if not all(math.isfinite(v) for v in results.values()):
        raise HatError(f'{folder}: validation gave non-finite metrics {results}; nothing recorded')
    # The model is back on the CPU after training: the device is the trainer's (or, validating, where CUDA ran).
    trainer = getattr(model, 'trainer', None)
    used_cuda = torch.cuda.is_initialized() and torch.cuda.max_memory_reserved() > 0
    device = torch.device(trainer.device if trainer is not None else 'cuda' if used_cuda else 'cpu')
    memory, memory_kind = peak_memory(device)
    network = model.model.float()
    write_json_atomic(folder / RESULT, {
        'model': spec['model'], 'seed': spec['seed'], 'metrics': results,
        'parameters': sum(p.numel() for p in network.parameters()), 'gflops': count_gflops(network, spec['imgsz']),
        'epoch_seconds': [times[k] for k in sorted(times, key=int)], 'peak_memory_bytes': memory,
        'memory_kind': memory_kind, 'device': str(device),
    })


def main() -> int:
    return report_user_errors(lambda: run(json.loads(sys.argv[1])) or 0, 'hat-yolo compare')


if __name__ == '__main__':
    sys.exit(main())
