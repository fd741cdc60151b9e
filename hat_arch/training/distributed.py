"""Joining the process group that torchrun or srun started, on CPU-only machines as well as on GPUs.

BasicSR's ``init_dist`` hard-codes the nccl backend and calls ``torch.cuda.set_device(rank % device_count)``, which
divides by zero without a GPU. Here the backend is gloo on CPU and nccl on GPU unless the option file's
``dist_params: backend`` says otherwise, and the GPU is chosen by the local rank (right on several nodes too).
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel

from hat_arch.errors import HatError

TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
SLURM_VARIABLES = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')


def default_backend() -> str:
    """nccl when a GPU is visible, gloo otherwise."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher: str, backend: str | None = None, port: int | None = None, **kwargs) -> None:
    """Join the process group of ``launcher`` ('pytorch': torchrun / torch.distributed.run, 'slurm': srun).

    A drop-in for BasicSR's ``init_dist(launcher, backend='nccl', **kwargs)``; ``port`` is used by SLURM only
    (torchrun sets ``MASTER_PORT`` itself), other keyword arguments go to ``init_process_group``.
    """
    if launcher == 'slurm':
        _export_slurm_environment(port)
    elif launcher != 'pytorch':
        raise HatError(f'--launcher {launcher}: expected none, pytorch or slurm')
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise HatError(f'--launcher pytorch needs the environment torchrun sets ({", ".join(missing)} missing): start '
                       'it with torchrun --nproc_per_node=N --no-python basicsr train -opt X.yml --launcher pytorch')
    backend = backend or default_backend()
    if backend == 'nccl' and not torch.cuda.is_available():
        raise HatError('dist_params: backend is nccl, which needs GPUs, but none is visible: use gloo on CPU '
                       '(or leave backend out to choose it automatically)')
    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, **kwargs)


def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
    """BasicSR's ``BaseModel.model_to_device`` that also runs distributed on the CPU: ``net`` on the model's device,
    wrapped in DistributedDataParallel when distributed (device ids for a CUDA module only: BasicSR always passes the
    current CUDA device, which dies with "Torch not compiled with CUDA enabled" on a CPU-only machine), else in
    DataParallel for several GPUs."""
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        return DistributedDataParallel(net, device_ids=device_ids,
                                       find_unused_parameters=self.opt.get('find_unused_parameters', False))
    if self.opt['num_gpu'] > 1:
        return DataParallel(net)
    return net


def _export_slurm_environment(port: int | None) -> None:
    # srun describes the job in SLURM_* variables; init_process_group reads the torchrun-style ones.
    missing = [name for name in SLURM_VARIABLES if name not in os.environ]
    if missing:
        raise HatError(f'--launcher slurm needs the environment srun sets ({", ".join(missing)} missing): start it '
                       'with srun python -m hat_arch.train -opt X.yml --launcher slurm')
    rank = int(os.environ['SLURM_PROCID'])
    if 'MASTER_ADDR' not in os.environ:  # the first node of the allocation hosts the rendezvous
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(rank)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', str(rank % max(torch.cuda.device_count(), 1)))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_gather_objects(obj) -> list:
    """``obj`` of every process, indexed by rank (``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj):
    """Rank 0's ``obj`` on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_process(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any of them (one small all-reduce when distributed)."""
    if not is_distributed():
        return flag
    value = torch.tensor([float(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def sum_over_processes(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all processes."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def _collective_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo reduces CPU tensors.
    if dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')
