"""The server's temporary folder: only uploaded files are opened, within the size limit, under safe names."""
from __future__ import annotations

import pytest

from hat_arch.errors import HatError
from hat_arch.web.workspace import Workspace, safe_name


@pytest.fixture
def workspace():
    workspace = Workspace(max_upload_bytes=1000)
    yield workspace
    workspace.cleanup()
    assert not workspace.root.exists()


def test_an_upload_is_copied_into_the_job_under_a_safe_name(workspace):
    upload = workspace.uploads / 'abc123' / 'my photo (1).png'
    upload.parent.mkdir()
    upload.write_bytes(b'x' * 1000)
    job = workspace.new_job()
    first, second = workspace.accept_upload(upload, job), workspace.accept_upload(upload, job)
    assert first == job / 'inputs' / 'my_photo_1_.png' and second.name == 'my_photo_1_-2.png'
    assert first.read_bytes() == upload.read_bytes()


@pytest.mark.parametrize('name', ['../../etc/passwd', '/etc/passwd', '..', '.bashrc'])
def test_client_names_never_leave_the_folder(name):
    cleaned = safe_name(name)
    assert '/' not in cleaned and not cleaned.startswith('.')


def test_paths_outside_the_uploads_and_files_over_the_limit_are_refused(workspace, tmp_path):
    job = workspace.new_job()
    outside = tmp_path / 'secret.png'
    outside.write_bytes(b'x')
    with pytest.raises(HatError, match='secret.png: not an uploaded file'):
        workspace.accept_upload(outside, job)
    link = workspace.uploads / 'link.png'
    link.symlink_to(outside)
    with pytest.raises(HatError, match='not an uploaded file'):
        workspace.accept_upload(link, job)
    with pytest.raises(HatError, match='not an uploaded file'):
        workspace.accept_upload(workspace.uploads / '..' / 'jobs', job)
    big = workspace.uploads / 'big.png'
    big.write_bytes(b'x' * 1001)
    with pytest.raises(HatError, match=r'big.png: .* over the upload limit .*--max-upload-mb'):
        workspace.accept_upload(big, job)
    assert not (job / 'inputs').exists() or not any((job / 'inputs').iterdir())
