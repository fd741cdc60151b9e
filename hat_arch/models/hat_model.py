"""HATModel: BasicSR's SRModel with HAT's inference (any size, overlapping tiles, self-ensemble) and mixed precision."""
from __future__ import annotations

import json
import os.path as osp
from collections import OrderedDict
from typing import Any

import torch
from torch.utils.data import DataLoader
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from hat_arch.atomic_write import write_text_atomic
from hat_arch.state_dict import describe_state_dict_mismatch
from hat_arch.checkpoint import load_weights, read_state_dict_entry
from hat_arch.errors import HatError
from hat_arch.inference import eval_mode, run_tiled
from hat_arch.models.degradation import check_vgg_weights
from hat_arch.progress import progress_bar
from hat_arch.training import distributed, saves

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def metrics_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per test set, one column per metric (PSNR/SSIM to 4 decimals)."""
    metrics = list(dict.fromkeys(m for values in results.values() for m in values))
    rows = [f'| dataset | {" | ".join(metrics)} |', '| --- |' + ' --- |' * len(metrics)]
    for name, values in results.items():
        rows.append(f'| {name} | ' + ' | '.join(f'{values[m]:.4f}' if m in values else '' for m in metrics) + ' |')
    return '\n'.join(rows)


@MODEL_REGISTRY.register()
class HATModel(SRModel):
    """SRModel for HAT.

    Differences from ``SRModel``:

    - validation/test run through the tiling policy, :func:`hat_arch.inference.run_tiled`: any LR size (the network
      pads and crops), overlapping tiles blended without seams when the options have ``tile: {tile_size, tile_pad}``
      (``tile_size: auto``: the largest that fits in free memory), a retry with smaller tiles on out of memory, the x8
      self-ensemble with ``val: self_ensemble: true``; the EMA network is used when there is one, and the network is
      put back in the mode it was in;
    - ``train: amp: bf16|fp16`` trains under autocast (fp16 with a gradient scaler);
    - a progress bar during validation/test (``val: pbar: false`` turns it off);
    - testing writes ``results/<name>/metrics.json`` and logs a table of every test set after the last one;
    - a pretrained file that is missing or holds another network is a one-line :class:`HatError` naming it;
    - networks and training states are saved atomically (a kill or a full disk mid-save leaves the previous
      checkpoint, not a truncated one), and a failed save stops the run instead of BasicSR's warning; so are the
      images that validation and test save;
    - distributed training runs on the CPU too (gloo).
    """

    # Calls, not aliases: importing hat_arch.training.saves first imports basicsr, which registers this module
    # while that one is still half made.
    def save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
        saves.save_network(self, net, net_label, current_iter, param_key)

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        saves.save_training_state(self, epoch, current_iter)

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        return distributed.model_to_device(self, net)

    def nondist_validation(self, dataloader: DataLoader, current_iter: int, tb_logger: Any, save_img: bool) -> None:
        # Imported here: basicsr_overrides imports BasicSR's modules, whose loading registers this one.
        from hat_arch.training.basicsr_overrides import atomic_image_writes

        with atomic_image_writes():
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def __init__(self, opt: dict):
        if opt.get('val'):
            opt['val'].setdefault('pbar', True)
        super().__init__(opt)
        if not self.is_train:
            self.net_g.eval()

    # ----------------------------------------------------------------------------------------------------- loading
    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BasicSR's loading through :func:`hat_arch.checkpoint.read_state_dict_entry`, the reader of ``hat-sr`` and
        the API: ``.pth`` or ``.safetensors``, BasicSR's ``param_key`` or a bare state dict; the log names the entry
        read. A missing or unreadable file, or one holding another network, is a one-line HatError naming it."""
        bare = self.get_bare_model(net)
        state_dict, entry = read_state_dict_entry(load_path, param_key, what='pretrained network')
        expected = bare.state_dict()
        if not set(state_dict) & set(expected):  # non-strict loading would silently load nothing
            raise HatError(f'pretrained network {load_path} holds another network: no parameter name matches '
                           f'{type(bare).__name__} (e.g. {next(iter(state_dict))})')
        fell_back = f' ({param_key} is not in the file)' if entry != param_key and entry else ''
        get_root_logger().info(f'Loading {type(bare).__name__} model from {load_path}, with param key: '
                               f'[{entry or "none: a bare state dict"}]{fell_back}.')
        if strict:
            load_weights(bare, state_dict, f'pretrained network {load_path}')
        else:
            fitting = sum(k in state_dict and state_dict[k].shape == v.shape for k, v in expected.items())
            if fitting < len(expected) / 2:  # another network: the run would start from random weights
                raise HatError(f'pretrained network {load_path} fits only {fitting} of the {len(expected)} tensors of '
                               f'{type(bare).__name__}; strict_load_g: false skips layers that differ, as for another '
                               f'scale, not most of them: {describe_state_dict_mismatch(expected, state_dict)}')
            self._print_different_keys_loading(net, state_dict, strict)  # logs, and skips keys of another shape
            bare.load_state_dict(state_dict, strict=False)

    # ---------------------------------------------------------------------------------------------------- training
    def init_training_settings(self):
        amp = self.opt['train'].get('amp')
        if amp not in (None, False, *AMP_DTYPES):
            raise HatError(f"train: amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
        self.amp_dtype = AMP_DTYPES.get(amp)
        # A gradient scaler keeps small fp16 gradients from flushing to zero; bf16 has fp32's range and needs none.
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        if self.amp_dtype is not None:
            get_root_logger().info(f'Mixed precision training: {amp} autocast on {self.device.type}.')
        check_vgg_weights(self.opt['train'].get('perceptual_opt'))  # BasicSR would try to download them
        super().init_training_settings()

    def optimize_parameters(self, current_iter):
        if self.amp_dtype is None:
            return super().optimize_parameters(current_iter)
        self.optimizer_g.zero_grad()
        with torch.autocast(self.device.type, dtype=self.amp_dtype):
            self.output = self.net_g(self.lq)
        self.output = self.output.float()  # losses in fp32
        l_total, loss_dict = self.generator_losses()
        self.grad_scaler.scale(l_total).backward()
        self.grad_scaler.step(self.optimizer_g)
        self.grad_scaler.update()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def generator_losses(self) -> tuple[torch.Tensor, OrderedDict]:
        """Pixel and perceptual losses of ``self.output`` against ``self.gt``, as SRModel defines them."""
        l_total, loss_dict = 0, OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
            l_total += loss_dict['l_pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (('l_percep', l_percep), ('l_style', l_style)):
                if value is not None:
                    loss_dict[name] = value
                    l_total += value
        return l_total, loss_dict

    # ----------------------------------------------------------------------------------------------------- testing
    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        # Called once per set with its final metrics, also when the images were spread over several processes.
        if not self.opt['is_train']:  # a test has no best-so-far: BasicSR would log 'Best: ... @ <run name> iter'
            self.__dict__.pop('best_metric_results', None)
        super()._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        if not self.opt['is_train']:  # RealESRNetModel clears is_train while it validates
            self.record_test_metrics(dataset_name)

    def record_test_metrics(self, dataset_name: str) -> None:
        """Keep a test set's metrics in ``results/<name>/metrics.json``; after the last set, log them as a table."""
        self.test_metrics = getattr(self, 'test_metrics', {})
        self.test_metrics[dataset_name] = {k: float(v) for k, v in self.metric_results.items()}
        write_text_atomic(osp.join(self.opt['path']['results_root'], 'metrics.json'),
                          json.dumps(self.test_metrics, indent=2) + '\n')
        if len(self.test_metrics) == len(self.opt['datasets']):
            get_root_logger().info(f"{self.opt['name']}\n{metrics_table(self.test_metrics)}")

    def test(self):
        """``self.output`` for ``self.lq``: tiles and self-ensemble as the options say, the EMA network if any."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        val, tile = self.opt.get('val') or {}, self.opt.get('tile') or {}
        with eval_mode(net):
            show = bool(tile.get('tile_size') and val.get('pbar', True))
            with progress_bar('tiles', 'tile', enabled=show, leave=False) as progress:
                tile_pad = 32 if tile.get('tile_pad') is None else tile['tile_pad']  # null: the default, as checked
                self.output = run_tiled(self.get_bare_model(net), self.lq, tile.get('tile_size'), tile_pad,
                                        bool(val.get('self_ensemble', False)), progress)
