"""RealHATGANModel: Real-HAT-GAN, HAT fine-tuned with L1, perceptual and GAN losses on Real-ESRGAN's degradations."""
from __future__ import annotations

from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.utils.registry import MODEL_REGISTRY

from hat_arch.errors import HatError
from hat_arch.models.degradation import OnDeviceDegradation, check_real_options
from hat_arch.models.hat_model import HATModel


@MODEL_REGISTRY.register()
class RealHATGANModel(OnDeviceDegradation, RealESRGANModel, HATModel):
    """BasicSR's RealESRGANModel on any device, validated and tested like :class:`HATModel`.

    Training: the degradations of :class:`~hat_arch.models.realhat_mse_model.RealHATMSEModel` (from USM-sharpened GT),
    then net_g is trained against the GT or its USM-sharpened version as ``l1_gt_usm``, ``percep_gt_usm`` and
    ``gan_gt_usm`` say, and net_d (e.g. ``UNetDiscriminatorSN``) on real vs. generated images; EMA of net_g. Both
    networks are saved (``net_g_*.pth``, ``net_d_*.pth``).
    """

    def __init__(self, opt: dict):
        check_real_options(opt, usm_keys=('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm'))
        if opt['is_train'] and opt['train'].get('amp'):
            raise HatError(f"train: amp is not supported by {opt['model_type']} (GAN training runs in fp32)")
        super(RealESRGANModel, self).__init__(opt)  # skip RealESRGANModel.__init__: it only moves modules to CUDA
        self.init_degradation()
