"""Failures of the server itself, as a client sees them: a full disk while a result or LAM figure is written, a
workspace it cannot write to. Each is one line, names the file where there is one, shows no server path, and the
server goes on. (The server runs in this process, so that its writer can be made to fail.)"""
from __future__ import annotations

import errno

import pytest

gr = pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install -e '.[web]'")
gradio_client = pytest.importorskip('gradio_client')
pytestmark = pytest.mark.slow  # a server and model runs: tens of seconds

from hat_arch.web.app import build_app  # noqa: E402
from hat_arch.web.catalogue import ModelCache, find_checkpoints  # noqa: E402
from hat_arch.web.workspace import Workspace  # noqa: E402
from tests.web.conftest import SET5, free_port  # noqa: E402

IMAGE = SET5 / 'head.png'  # 70x70


@pytest.fixture(scope='module')
def served(checkpoint, tmp_path_factory):
    workspace = Workspace(max_upload_bytes=2**24)
    with pytest.MonkeyPatch.context() as env:
        env.setenv('GRADIO_TEMP_DIR', str(workspace.uploads))
        env.setenv('GRADIO_ANALYTICS_ENABLED', 'False')
        app = build_app(find_checkpoints(checkpoint), ModelCache('cpu'), workspace)
        app.queue(default_concurrency_limit=1)
        port = free_port()
        app.launch(server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
        client = gradio_client.Client(f'http://127.0.0.1:{port}/', verbose=False,
                                      download_files=str(tmp_path_factory.mktemp('downloads')))
        model = client.view_api(return_format='dict', print_info=False)['named_endpoints']['/upscale'][
            'parameters'][1]['parameter_default']
        yield client, model, workspace
        app.close()
        workspace.cleanup()


def disk_full(path, *args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device', str(path))


def upscale(client, model):
    return client.predict([gradio_client.handle_file(str(IMAGE))], model, 'auto', 'fp32', False,
                          api_name='/upscale')


def test_a_full_disk_while_a_result_is_written_names_the_file_and_no_server_path(served, monkeypatch):
    client, model, workspace = served
    monkeypatch.setattr('hat_arch.api.write_image', disk_full)
    status = upscale(client, model)[0]
    assert status.startswith('Nothing was upscaled.\n- **Not upscaled**: head.png: the server could not store the '
                             'files (No space left on device)')
    assert str(workspace.root) not in status and '/tmp' not in status
    monkeypatch.undo()
    assert upscale(client, model)[0] == 'Upscaled 1 image(s).'  # the server goes on


@pytest.mark.parametrize('failing', ['hat_arch.web.workspace.Workspace.new_job', 'hat_arch.web.app.write_image'])
def test_a_workspace_that_cannot_be_written_is_one_line_without_its_path(served, monkeypatch, failing):
    client, model, workspace = served
    monkeypatch.setattr(failing, lambda *args, **kwargs: disk_full(workspace.jobs / 'f00d' / 'head_lam.png'))
    endpoint = '/lam' if failing.endswith('write_image') else '/upscale'
    with pytest.raises(Exception) as raised:  # gradio_client's AppError, with the page's message
        if endpoint == '/lam':
            client.predict(gradio_client.handle_file(str(IMAGE)), model, 120, 96, 16, 2, api_name='/lam')
        else:
            upscale(client, model)
    message = str(raised.value)
    assert 'the server could not store the files (No space left on device)' in message
    assert str(workspace.root) not in message and 'f00d' not in message

