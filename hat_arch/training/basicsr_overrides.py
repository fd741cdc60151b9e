"""What ``basicsr train`` / ``basicsr test`` change in BasicSR's own classes and functions: for the runs they launch,
nothing else.

hat_arch's models and datasets have these behaviours as their own methods. A run of our commands may also use BasicSR's
classes (``model_type: SRModel``; ``type: PairedImageDataset`` in most HAT recipes), and gets the same guarantees from
them: while :func:`overriding_basicsr_classes` is active their methods are ours, and afterwards BasicSR's again. So a
process that merely imports hat_arch (another project using ``type: HAT`` in its own pipeline) keeps stock BasicSR.

- ``BaseModel.save_network`` / ``save_training_state`` (:mod:`hat_arch.training.saves`): BasicSR saves in place,
  so a kill or a full disk mid-save leaves a truncated newest checkpoint, and a failed save is only a warning.
- ``BaseModel.model_to_device`` (:func:`hat_arch.training.distributed.model_to_device`): distributed training on a
  CPU-only machine dies with "Torch not compiled with CUDA enabled".
- ``PairedImageDataset`` / ``SingleImageDataset.__getitem__`` (:func:`hat_arch.data.checks.naming_unreadable_images`):
  an image unreadable mid-run stops the run with an AttributeError that names no file.
- ``imwrite``, as BasicSR's modules hold it (:func:`atomic_image_writes`): validation and test images are written in
  place, so a kill leaves a torn PNG, and a symbolic link planted at a result's name gets the image written through
  it, over an unrelated file.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import basicsr.utils.img_util
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.single_image_dataset import SingleImageDataset
from basicsr.models.base_model import BaseModel

from hat_arch.compat import repoint
from hat_arch.data.checks import naming_unreadable_images
from hat_arch.image_io import basicsr_imwrite
from hat_arch.training import distributed, saves

DATASETS = (PairedImageDataset, SingleImageDataset)


def our_methods() -> dict[tuple[type, str], Callable]:
    """Our method for each (class, name) of BasicSR's that our commands replace; the datasets' wrap BasicSR's own."""
    methods = {(BaseModel, 'save_network'): saves.save_network,
               (BaseModel, 'save_training_state'): saves.save_training_state,
               (BaseModel, 'model_to_device'): distributed.model_to_device}
    for dataset in DATASETS:  # (SingleImageDataset's paths are the LR images')
        methods[dataset, '__getitem__'] = naming_unreadable_images(vars(dataset)['__getitem__'], 'lq')
    return methods


@contextmanager
def overriding_basicsr_classes() -> Iterator[None]:
    """BasicSR's classes with our methods (see the module's docstring) inside the block, their own outside it."""
    ours = our_methods()
    originals = {(cls, name): vars(cls)[name] for cls, name in ours}
    try:
        for (cls, name), method in ours.items():
            setattr(cls, name, method)
        with atomic_image_writes():
            yield
    finally:
        for (cls, name), method in originals.items():
            setattr(cls, name, method)


@contextmanager
def atomic_image_writes() -> Iterator[None]:
    """Inside the block, every BasicSR module's ``imwrite`` (``from basicsr.utils import imwrite`` included) is
    :func:`hat_arch.image_io.basicsr_imwrite`: the same pixels, written atomically; BasicSR's own again after it."""
    stock = basicsr.utils.img_util.imwrite
    if stock is basicsr_imwrite:  # inside another such block, which puts BasicSR's back
        yield
        return
    repoint(stock, basicsr_imwrite)
    try:
        yield
    finally:  # also in the modules first imported inside the block
        repoint(basicsr_imwrite, stock)
