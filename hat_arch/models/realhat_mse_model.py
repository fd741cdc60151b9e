"""RealHATMSEModel: HAT trained with L1 on Real-ESRGAN's synthetic degradations (the first stage of Real-HAT-GAN)."""
from __future__ import annotations

from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.utils.registry import MODEL_REGISTRY

from hat_arch.models.degradation import OnDeviceDegradation, check_real_options
from hat_arch.models.hat_model import HATModel


@MODEL_REGISTRY.register()
class RealHATMSEModel(OnDeviceDegradation, RealESRNetModel, HATModel):
    """BasicSR's RealESRNetModel on any device, validated and tested like :class:`HATModel`.

    Training (``feed_data``, from BasicSR): the GT batch (USM-sharpened when ``gt_usm: true``) goes through two rounds
    of blur, random resize, Gaussian/Poisson noise and JPEG, then a final sinc filter, all on ``self.device``; the
    pairs are cropped to ``gt_size`` and mixed through a pool of ``queue_size`` pairs. The rest is HATModel: L1 (or
    any pixel/perceptual loss), EMA, ``train: amp``, and validation/test with padding, tiles and self-ensemble.
    """

    def __init__(self, opt: dict):
        check_real_options(opt, usm_keys=('gt_usm',))
        super(RealESRNetModel, self).__init__(opt)  # skip RealESRNetModel.__init__: it only moves modules to CUDA
        self.init_degradation()
