"""The page's messages name the user's file, never a path on the server: each handler called as Gradio calls it."""
from __future__ import annotations

import pytest

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
import gradio as gr  # noqa: E402

from hat_arch.web.app import RunLog, _lam_handler, _lam_preview, _upscale_handler  # noqa: E402
from hat_arch.web.catalogue import ModelCache, find_checkpoints, label  # noqa: E402
from hat_arch.web.workspace import Workspace  # noqa: E402

DAMAGED = 'damaged photo.tif'  # (a TIFF is previewed through hat_arch's reader, which names the file)


@pytest.fixture
def page(checkpoint):
    workspace = Workspace(max_upload_bytes=2**20)
    upload = workspace.uploads / DAMAGED
    upload.write_bytes(b'not an image')
    by_label = {label(info): info for info in find_checkpoints(checkpoint)}
    handlers = [factory(by_label, ModelCache('cpu'), workspace, None, RunLog(print))
                for factory in (_upscale_handler, _lam_handler)]
    yield workspace, str(upload), next(iter(by_label)), *handlers
    workspace.cleanup()


def assert_names_the_file_only(message: str, workspace: Workspace) -> None:
    assert 'damaged_photo.tif' in message  # (the name of the copy: a safe one)
    assert str(workspace.root) not in message and '/inputs/' not in message, message


def no_progress(*args, **kwargs) -> None:
    pass


def test_an_upscaling_failure_names_the_file_not_the_server_folder(page):
    workspace, upload, model, upscale, _ = page
    with pytest.warns(UserWarning):  # (gr.Warning outside a request)
        status = upscale([upload], model, 'auto', 'fp32', False, progress=no_progress)[0]
    assert status.startswith('Nothing was upscaled.\n- **Not upscaled**: damaged photo.tif: cannot read')
    assert_names_the_file_only(status, workspace)


def test_the_lam_tabs_failures_name_the_file_not_the_server_folder(page):
    workspace, upload, model, _, explain = page
    with pytest.raises(gr.Error) as caught:
        explain(upload, model, 0, 0, 16, 2, progress=no_progress)
    assert_names_the_file_only(caught.value.message, workspace)
    with pytest.raises(gr.Error) as caught:
        _lam_preview(workspace)(upload)
    assert_names_the_file_only(caught.value.message, workspace)
