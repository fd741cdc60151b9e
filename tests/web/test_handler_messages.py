"""The page's messages name the user's file, never a path on the server: each handler called as the page calls it
(wrapped by :func:`hat_arch.web.messages.page_errors`)."""
from __future__ import annotations

import pytest

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
import gradio as gr  # noqa: E402

from hat_arch.web.app import RunLog, _aim_handlers, _lam_handler, _upscale_handler  # noqa: E402
from hat_arch.web.catalogue import ModelCache, find_checkpoints, label  # noqa: E402
from hat_arch.web.messages import page_errors  # noqa: E402
from hat_arch.web.workspace import Workspace  # noqa: E402

DAMAGED = 'damaged photo.tif'  # (a TIFF is previewed through hat_arch's reader, which names the file)


@pytest.fixture
def page(checkpoint):
    workspace = Workspace(max_upload_bytes=2**20)
    upload = workspace.uploads / DAMAGED
    upload.write_bytes(b'not a png')
    by_label = {label(info): info for info in find_checkpoints(checkpoint)}
    handlers = [page_errors(print)(factory(by_label, ModelCache('cpu'), workspace, None, RunLog(print)))
                for factory in (_upscale_handler, _lam_handler)]
    preview = page_errors(print)(_aim_handlers(by_label, workspace, None)[0])
    yield workspace, str(upload), next(iter(by_label)), *handlers, preview
    workspace.cleanup()


def assert_names_the_file_only(message: str, workspace: Workspace) -> None:
    assert 'damaged_photo.tif' in message  # (the name of the copy: a safe one)
    assert str(workspace.root) not in message and '/inputs/' not in message, message


def no_progress(*args, **kwargs) -> None:
    pass


def test_an_upscaling_failure_names_the_file_not_the_server_folder(page):
    workspace, upload, model, upscale, _, _ = page
    with pytest.warns(UserWarning):  # (gr.Warning outside a request)
        status = upscale([upload], model, 'auto', 'fp32', False, progress=no_progress)[0]
    assert status.startswith('Nothing was upscaled.\n- **Not upscaled**: damaged photo.tif: cannot read')
    assert_names_the_file_only(status, workspace)


def test_the_lam_tabs_failures_name_the_file_not_the_server_folder(page):
    workspace, upload, model, _, explain, preview = page
    with pytest.raises(gr.Error) as caught:
        explain(upload, model, 0, 0, 16, 2, progress=no_progress)
    assert_names_the_file_only(caught.value.message, workspace)
    with pytest.raises(gr.Error) as caught:
        preview(upload, model, 0, 0, 16, None)
    assert_names_the_file_only(caught.value.message, workspace)
