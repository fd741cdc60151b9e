"""Real-ESRGAN's on-the-fly second-order degradations on the model's device, and the start-up checks of Real-HAT.

BasicSR's ``RealESRNetModel`` / ``RealESRGANModel`` synthesise the LQ images in ``feed_data`` with device-agnostic
functions (``filter2D``, random Gaussian/Poisson noise, ``DiffJPEG``, ``USMSharp``), but move their JPEG and USM modules
and the training-pair pool to the GPU with ``.cuda()``. :class:`OnDeviceDegradation` builds them on ``self.device``
(CPU or CUDA) instead, and the checks below turn bad options into one-line :class:`HatError` before anything is built.
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

import torch
import torchvision.models
from basicsr.archs.vgg_arch import NAMES as VGG_LAYER_NAMES
from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
from basicsr.utils import DiffJPEG, USMSharp

from hat_arch.errors import HatError, did_you_mean

# The options BasicSR's feed_data reads for the two degradation stages (top level of the option file).
DEGRADATION_KEYS = ('resize_prob', 'resize_range', 'gaussian_noise_prob', 'noise_range', 'poisson_scale_range',
                    'gray_noise_prob', 'jpeg_range', 'second_blur_prob', 'resize_prob2', 'resize_range2',
                    'gaussian_noise_prob2', 'noise_range2', 'poisson_scale_range2', 'gray_noise_prob2', 'jpeg_range2',
                    'gt_size')
PROBABILITY_KEYS = ('gaussian_noise_prob', 'gray_noise_prob', 'second_blur_prob', 'gaussian_noise_prob2',
                    'gray_noise_prob2')
RANGE_KEYS = ('resize_range', 'noise_range', 'poisson_scale_range', 'jpeg_range', 'resize_range2', 'noise_range2',
              'poisson_scale_range2', 'jpeg_range2')
RESIZE_CHOICE_KEYS = ('resize_prob', 'resize_prob2')  # weights of up, down, keep
# The blur kernels BasicSR's random_mixed_kernels draws (RealESRGANDataset: kernel_list, kernel_list2).
KERNELS = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')


def check_real_options(opt: dict, usm_keys: tuple[str, ...]) -> None:
    """Raise HatError naming the first problem of a Real-HAT training option file; nothing to check when testing."""
    if not opt['is_train']:
        return
    if opt.get('high_order_degradation', True):
        missing = [key for key in (*DEGRADATION_KEYS, *usm_keys) if key not in opt]
        if missing:
            raise HatError(f"{opt['model_type']} needs the top-level option(s) {', '.join(missing)} "
                           '(see options/train/train_Real_HAT_SRx4_mse_model.yml)')
        check_degradation_values(opt)
        batch = opt['datasets']['train']['batch_size_per_gpu']
        queue_size = opt.get('queue_size', 180)
        if queue_size % batch:
            raise HatError(f'queue_size ({queue_size}) must be a multiple of '
                           f'datasets: train: batch_size_per_gpu ({batch})')
    check_vgg_weights(opt['train'].get('perceptual_opt'))


def _is_number(value) -> bool:
    return type(value) in (int, float)  # not bool, not a string YAML left unread


def check_degradation_values(opt: dict) -> None:
    """The degradation settings have the shapes BasicSR's feed_data and RealESRGANDataset use them in: else they fail
    at the first iteration, e.g. 'The number of weights does not match the population'."""
    for key in PROBABILITY_KEYS:
        if not (_is_number(opt[key]) and 0 <= opt[key] <= 1):
            raise HatError(f'{key} must be a probability from 0 to 1, got {opt[key]!r}')
    for key in RANGE_KEYS:
        value = opt[key]
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)) and value[0] <= value[1]):
            raise HatError(f'{key} must be a range [low, high], got {value!r}')
    for key in RESIZE_CHOICE_KEYS:
        value = opt[key]
        if not (isinstance(value, list) and len(value) == 3 and all(_is_number(v) and v >= 0 for v in value)
                and sum(value) > 0):
            raise HatError(f'{key} must be the weights [up, down, keep] of the resize, got {value!r}')
    dataset = opt['datasets']['train']
    for names, weights in (('kernel_list', 'kernel_prob'), ('kernel_list2', 'kernel_prob2')):
        if names not in dataset:
            continue
        unknown = [name for name in dataset[names] if name not in KERNELS]
        if unknown:
            raise HatError(f"datasets: train: {names}: unknown kernel {unknown[0]!r}{did_you_mean(unknown[0], KERNELS)}"
                           f" (kernels: {', '.join(KERNELS)})")
        if len(dataset.get(weights) or []) != len(dataset[names]):
            raise HatError(f'datasets: train: {weights} must give one weight per kernel of {names} '
                           f'({len(dataset[names])}), got {dataset.get(weights)!r}')


def check_vgg_weights(perceptual_opt: dict | None) -> None:
    """Raise HatError unless the VGG weights of BasicSR's PerceptualLoss are on disk (it would download them)."""
    if not perceptual_opt:
        return
    vgg_type = perceptual_opt.get('vgg_type', 'vgg19')
    if vgg_type.replace('_bn', '') not in VGG_LAYER_NAMES:
        raise HatError(f"perceptual_opt: vgg_type {vgg_type!r} is not one of {', '.join(VGG_LAYER_NAMES)} (or *_bn)")
    url = torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url
    file_name = os.path.basename(urlparse(url).path)
    cached = os.path.join(torch.hub.get_dir(), 'checkpoints', file_name)
    # VGGFeatureExtractor loads BasicSR's path (relative to the run folder) if it exists, else torchvision's cache.
    local = VGG_PRETRAIN_PATH if os.path.basename(VGG_PRETRAIN_PATH) == file_name else None
    if os.path.isfile(cached) or (local and os.path.isfile(local)):
        return
    raise HatError(f'perceptual_opt needs the {vgg_type} weights {file_name}, not found: download {url} to {cached} '
                   f'(or {VGG_PRETRAIN_PATH} under the run folder)')


class ContiguousDiffJPEG(DiffJPEG):
    """BasicSR's DiffJPEG with a contiguous output: (b, c, h, w) -> (b, c, h, w).

    DiffJPEG returns a channels-last view; reflect padding keeps that layout on the CPU, and BasicSR's ``filter2D``
    (the second-stage blur) then fails on ``.view()``.
    """

    def forward(self, x: torch.Tensor, quality) -> torch.Tensor:
        return super().forward(x, quality).contiguous()


class OnDeviceDegradation:
    """Put before BasicSR's RealESRNetModel / RealESRGANModel: their degradation state on ``self.device``.

    The subclass's ``__init__`` skips the BasicSR model's own ``__init__`` (which only builds the modules below with
    ``.cuda()``) and calls :meth:`init_degradation` instead.
    """

    def init_degradation(self) -> None:
        self.jpeger = ContiguousDiffJPEG(differentiable=False).to(self.device)  # JPEG with a quality per image
        self.usm_sharpener = USMSharp().to(self.device)  # unsharp-masked (sharper) targets
        self.queue_size = self.opt.get('queue_size', 180)

    @torch.no_grad()
    def _dequeue_and_enqueue(self) -> None:
        """BasicSR's training-pair pool, allocated on ``self.device`` on first use (BasicSR allocates it on CUDA)."""
        if not hasattr(self, 'queue_lr'):
            self.queue_lr = self.lq.new_zeros(self.queue_size, *self.lq.shape[1:])
            self.queue_gt = self.gt.new_zeros(self.queue_size, *self.gt.shape[1:])
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()
