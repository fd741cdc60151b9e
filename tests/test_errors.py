"""The error helpers: one line of an exception."""
from __future__ import annotations



from hat_arch.errors import first_line


def test_first_line_of_an_error():
    assert first_line(RuntimeError('shape mismatch\n  at layer 3')) == 'shape mismatch'
    assert first_line(FileNotFoundError(2, 'No such file or directory', '/x/y')) == 'No such file or directory'
    assert first_line(ValueError()) == 'ValueError'
