"""The last line of a finished training of a HAT: the hat-sr command that upscales with the model it saved."""
from __future__ import annotations

from hat_arch.train import upscale_hint


def options(models: str, network: str = 'HAT') -> dict:
    return {'network_g': {'type': network}, 'path': {'models': models}}


def test_the_hint_names_the_latest_model_relative_to_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert upscale_hint(options(str(tmp_path / 'experiments' / 'my run' / 'models'))) == (
        'Upscale images with this model: hat-sr upscale IMAGE -o OUTDIR -m '
        "'experiments/my run/models/net_g_latest.pth'")


def test_a_model_outside_the_current_folder_is_named_by_its_full_path(tmp_path, monkeypatch):
    (tmp_path / 'here').mkdir()
    monkeypatch.chdir(tmp_path / 'here')
    assert upscale_hint(options(str(tmp_path / 'runs' / 'models'))).endswith(
        f" -m {tmp_path / 'runs' / 'models' / 'net_g_latest.pth'}")


def test_no_hint_for_networks_that_hat_sr_does_not_load():
    assert upscale_hint(options('experiments/edsr/models', network='EDSR')) is None
