"""What the page says when something fails: one line naming the file, never a path of the server; a full disk
included, whichever writer or folder fails."""
from __future__ import annotations

import errno

import pytest

gr = pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install -e '.[web]'")

from hat_arch.errors import HatError  # noqa: E402
from hat_arch.web.messages import page_errors, public_message, without_paths  # noqa: E402

WORKSPACE = '/tmp/hat-sr-serve-k2j4/jobs/0a1b2c'


@pytest.mark.parametrize(('text', 'shown'), [
    (f'{WORKSPACE}/inputs/baby.png: cannot read', 'baby.png: cannot read'),
    (f"[Errno 28] No space left on device: '{WORKSPACE}/.baby.png.x7a'",
     "[Errno 28] No space left on device: '.baby.png.x7a'"),
    ('cannot read checkpoint /srv/models/team/x4.pth: not a PyTorch checkpoint',
     'cannot read checkpoint x4.pth: not a PyTorch checkpoint'),
    (r'C:\Users\me\models\x4.pth: bad', 'x4.pth: bad'),
    ('box x=270,y=0,w=16,h=16 reaches outside the 280x280 output; x4/2 http://host/a/b/', None),
])
def test_paths_lose_their_folders_and_other_text_stays(text, shown):
    assert without_paths(text) == (shown or text)


def test_a_full_disk_is_one_line_without_the_path_whoever_raises_it():
    disk_full = OSError(errno.ENOSPC, 'No space left on device', f'{WORKSPACE}/baby.png')
    assert public_message(disk_full) == ('the server could not store the files (No space left on device); try '
                                         'again later')
    assert public_message(HatError(f'cannot write {WORKSPACE}/baby.png: No space left on device')) == (
        'cannot write baby.png: No space left on device')
    assert public_message(KeyError(f'{WORKSPACE}/x')) == "KeyError: 'x'"


def test_handlers_raise_gradio_errors_with_the_public_line_and_the_log_keeps_the_whole_one():
    logged = []

    @page_errors(logged.append)
    def handler(value: int) -> int:
        if value == 1:
            raise OSError(errno.ENOSPC, 'No space left on device', f'{WORKSPACE}/baby.png')
        if value == 2:
            raise gr.Error(f'{WORKSPACE}/inputs/baby.png: not an image')
        return value

    assert handler(3) == 3
    with pytest.raises(gr.Error) as raised:
        handler(1)
    assert WORKSPACE not in raised.value.message and 'No space left on device' in raised.value.message
    assert logged == [f"handler failed: OSError: [Errno 28] No space left on device: '{WORKSPACE}/baby.png'"]
    with pytest.raises(gr.Error) as raised:
        handler(2)
    assert raised.value.message == 'baby.png: not an image' and len(logged) == 1
