"""Named models and their config: every released layout by name, packaged weights, one-line errors, the README's
table."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from safetensors.torch import save_file

import hat_arch
from hat_arch import HAT, HATConfig, HatError, create_model, describe, list_models
from hat_arch.archs import named_models
from hat_arch.archs.named_models import NAMED_MODELS, NamedModel, name_of
from hat_arch.shipped_model import SHIPPED_MODEL_NAME
from tests.conftest import GOLDEN, ROOT, load_golden

LAYOUTS = json.loads((GOLDEN / 'released_state_dict_shapes.json').read_text())
RELEASES = {f'HAT_SRx{s}_ImageNet-pretrain': f'HAT_SRx{s}' for s in (2, 3, 4)} | {
    f'HAT-L_SRx{s}_ImageNet-pretrain': f'HAT-L_SRx{s}' for s in (2, 3, 4)} | {
    'Real_HAT_GAN_SRx4': 'HAT_SRx4', 'Real_HAT_GAN_SRx4_sharper': 'HAT_SRx4'}


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_create_model_builds_every_released_layout(name):
    with torch.device('meta'):
        model = create_model(name)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == LAYOUTS[name]['state_dict']
    assert sum(p.numel() for p in model.parameters()) == LAYOUTS[name]['num_params']
    assert describe(model).name == name and describe(model).num_params == LAYOUTS[name]['num_params']


def test_every_release_is_named_and_shares_its_architecture():
    assert set(LAYOUTS) | set(RELEASES) | {SHIPPED_MODEL_NAME} == set(list_models())
    for release, architecture in RELEASES.items():
        assert NAMED_MODELS[release].config == NAMED_MODELS[architecture].config
        assert name_of(NAMED_MODELS[release].config) == architecture  # detection names the architecture
    assert NAMED_MODELS['Real_HAT_GAN_SRx4_sharper'].release == 'Real_HAT_GAN_sharper.pth'
    assert list_models('HAT-L*') == ['HAT-L_SRx2', 'HAT-L_SRx3', 'HAT-L_SRx4', 'HAT-L_SRx2_ImageNet-pretrain',
                                     'HAT-L_SRx3_ImageNet-pretrain', 'HAT-L_SRx4_ImageNet-pretrain']
    assert list_models(pretrained=True) == [name for name, entry in NAMED_MODELS.items() if entry.weights]


def test_overrides_change_only_what_they_name():
    model = create_model('HAT-S_SRx4', attn_impl='naive', drop_path_rate=0.0)
    assert model.config == NAMED_MODELS['HAT-S_SRx4'].config.replace(attn_impl='naive', drop_path_rate=0.0)
    assert model.attn_impl == 'naive' and model.training


@pytest.mark.parametrize('call, message', [
    (lambda: create_model('HAT-S_SRx5'),
     (r"^unknown model name 'HAT-S_SRx5' \(did you mean 'HAT-S_SRx4'\?\); hat_arch.list_models\(\) lists them$")),
    (lambda: create_model('HAT_SRx4', embed_dims=96),
     (r"^HAT_SRx4: cannot build HAT: HAT has no argument 'embed_dims' \(did you mean 'embed_dim'\?\)$")),
    (lambda: create_model('HAT_SRx4', num_heads=[7] * 6), r'^HAT_SRx4: cannot build HAT: num_heads 7 must divide'),
    (lambda: create_model('HAT_SRx4_ImageNet-pretrain', pretrained=True),
     (r'^HAT_SRx4_ImageNet-pretrain has no weights in the package; download HAT_SRx4_ImageNet-pretrain.pth '
      r'\(https://github.com/XPixelGroup/HAT#how-to-test\) and pass weights=<the file>, or use '
      r'hat_arch.load_model\(<the file>\)$')),
])
def test_bad_requests_are_one_line(call, message):
    with pytest.raises(HatError, match=message):
        call()


@pytest.fixture
def packaged_tiny(tmp_path, monkeypatch):
    """Another named model whose weights ship in the package: the golden tiny x4."""
    case = load_golden('tiny_x4')
    monkeypatch.setattr(named_models, 'WEIGHTS_DIR', tmp_path)
    save_file(case['params'], tmp_path / 'tiny_x4.safetensors')
    entry = NamedModel('tiny_x4', HATConfig(**case['config']), weights='tiny_x4.safetensors')
    monkeypatch.setitem(NAMED_MODELS, entry.name, entry)
    return case


def test_packaged_weights_load_by_name_and_keep_their_descriptor(packaged_tiny, tmp_path):
    case = packaged_tiny
    model = create_model('tiny_x4', pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(case['input']), case['output'], atol=1e-5, rtol=0)
    info = describe(model)
    assert info is model.model_info and (info.name, info.path) == ('tiny_x4', tmp_path / 'tiny_x4.safetensors')
    assert 'tiny_x4' in list_models(pretrained=True)


def test_weights_that_do_not_fit_the_name_fail_in_one_line(packaged_tiny, tmp_path):
    torch.save(load_golden('tiny_x3')['params'], tmp_path / 'x3.pth')
    with pytest.raises(HatError, match=rf'^checkpoint {re.escape(str(tmp_path / "x3.pth"))} does not fit HAT: '):
        create_model('tiny_x4', weights=tmp_path / 'x3.pth')


def test_config_is_frozen_checked_and_normalised():
    config = HATConfig(depths=[2, 2], num_heads=[3, 3], embed_dim=12, squeeze_factor=4)
    assert config.depths == (2, 2) and hash(config) == hash(config.replace())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.embed_dim = 24
    assert HAT(depths=[2, 2], num_heads=[3, 3], embed_dim=12, squeeze_factor=4).config == config
    assert HAT.from_config(config).config == config
    with pytest.raises(TypeError, match=r"^HAT argument embed_dim='wide' has the wrong type: expected an integer$"):
        config.replace(embed_dim='wide')
    with pytest.raises(TypeError, match=r"^HAT argument qkv_bias=1 has the wrong type: expected true or false$"):
        HATConfig(qkv_bias=1)
    with pytest.raises(TypeError, match=r"^HAT has no argument 'windowsize' \(did you mean 'window_size'\?\)$"):
        HATConfig.from_options({'windowsize': 8})


def test_hat_defaults_are_the_configs():
    import inspect

    defaults = {name: p.default for name, p in inspect.signature(HAT).parameters.items() if name != 'norm_layer'}
    assert defaults == HATConfig().as_kwargs()


def test_the_readme_table_is_the_registry():
    """Each row 'model | embed_dim | groups x blocks | parameters (x4)' of the README (or the docs) is the x4 model of
    that name: width, groups and blocks, and parameters in millions to one decimal."""
    pages = [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]
    rows = {}
    for page in pages:
        for match in re.finditer(r'^\| (HAT(?:-S|-L)?) \| (\d+) \| (\d+) x (\d+)[^|]*\| ([\d.]+) M \|$',
                                 page.read_text(), re.MULTILINE):
            rows[match[1]] = tuple(match.groups()[1:])
    assert set(rows) == {'HAT-S', 'HAT', 'HAT-L'}, 'the model table is missing from README.md and docs/'
    for model, (width, groups, blocks, millions) in rows.items():
        config = NAMED_MODELS[f'{model}_SRx4'].config
        assert (int(width), int(groups), int(blocks)) == (config.embed_dim, len(config.depths), config.depths[0])
        # The named model's count (test_create_model_builds_every_released_layout ties the two together).
        assert f"{LAYOUTS[f'{model}_SRx4']['num_params'] / 1e6:.1f}" == millions, model


def test_the_package_exports_the_named_model_api():
    assert hat_arch.create_model is create_model and hat_arch.list_models is list_models
    assert {'HATConfig', 'create_model', 'list_models', 'describe'} <= set(hat_arch.__all__)
