"""Our commands give BasicSR's own classes hat_arch's guarantees for the runs they launch, and only for those."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.single_image_dataset import SingleImageDataset
from basicsr.models.base_model import BaseModel

from hat_arch.errors import HatError, user_message
from hat_arch.train import main
from hat_arch.training import saves
from hat_arch.training.basicsr_overrides import our_methods, overriding_basicsr_classes
from tests.training.tiny import disk_full_after, one_thread, tiny_options, write_options


def basicsr_methods() -> dict:
    return {(cls, name): vars(cls)[name] for cls, name in our_methods()}


def test_our_methods_inside_the_block_basicsrs_after_it_even_after_an_error():
    stock = basicsr_methods()
    assert all(method.__module__.startswith('basicsr.') for method in stock.values())
    with pytest.raises(RuntimeError, match='mid-run'), overriding_basicsr_classes():
        assert BaseModel.save_network is saves.save_network
        assert all(vars(cls)[name] is not stock[cls, name] for cls, name in stock)
        raise RuntimeError('mid-run')
    assert basicsr_methods() == stock


def test_a_stock_srmodel_run_by_basicsr_train_saves_atomically(tmp_path, monkeypatch, capsys):
    """``model_type: SRModel`` with a stock network: the full disk stops the run with the last checkpoint intact
    (BasicSR alone would warn and go on without it), and BasicSR's own saving is back once the command returns."""
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('stock', total_iter=4, save_every=2, validate_every=None, model_type='SRModel',
                       network_g={'type': 'MSRResNet', 'num_feat': 4, 'num_block': 1, 'upscale': 4})
    del opt['train']['ema_decay']
    yml = write_options(tmp_path, opt)
    stock = basicsr_methods()
    monkeypatch.setattr(saves.torch, 'save', disk_full_after(2))  # net_g_2.pth and 2.state fit
    with one_thread():
        assert main(['-opt', str(yml)]) == 2
    monkeypatch.undo()
    assert basicsr_methods() == stock
    assert 'net_g_4.pth: No space left on device' in capsys.readouterr().err.strip().splitlines()[-1]
    assert [p.name for p in (tmp_path / 'experiments' / 'stock' / 'models').iterdir()] == ['net_g_2.pth']


@pytest.mark.slow  # spawns a DataLoader worker
def test_an_image_unreadable_mid_run_is_named_in_one_line(tmp_path):
    """BasicSR's datasets crash on such an image with an AttributeError naming nothing; in our runs the file is named,
    also from a DataLoader worker, and other errors are left alone."""
    from torch.utils.data import DataLoader

    for folder, side in (('gt', 16), ('lq', 4)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / 'a.png'), np.full((side, side, 3), 128, np.uint8))
    opt = lambda phase='val': dict(dataroot_gt=str(tmp_path / 'gt'), dataroot_lq=str(tmp_path / 'lq'),
                                   io_backend={'type': 'disk'}, phase=phase, scale=4)
    paired, single = PairedImageDataset(opt()), SingleImageDataset(opt())
    assert paired[0]['gt'].shape == (3, 16, 16) and single[0]['lq'].shape == (3, 4, 4)
    lq = tmp_path / 'lq' / 'a.png'
    lq.write_bytes(b'not a png')
    with pytest.raises(AttributeError):  # BasicSR's own, outside our runs
        paired[0]
    with overriding_basicsr_classes():
        for dataset in (paired, single):
            with pytest.raises(HatError, match=f'^cannot read {lq}: not an image OpenCV can decode '):
                dataset[0]
        with pytest.raises(HatError) as caught:
            next(iter(DataLoader(paired, num_workers=1)))
        assert user_message(caught.value).startswith(f'cannot read {lq}: not an image OpenCV can decode ')
        lq.unlink()
        with pytest.raises(HatError, match=f'^cannot read {lq}: No such file or directory$'):
            paired[0]
        cv2.imwrite(str(lq), np.full((4, 4, 3), 128, np.uint8))
        training = PairedImageDataset(opt('train'))  # no gt_size: BasicSR's own KeyError, not masked
        with pytest.raises(KeyError, match='gt_size'):
            training[0]
