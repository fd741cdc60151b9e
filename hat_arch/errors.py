"""The error users see as one line: bad option files, paths, images, checkpoints.

Launchers (``basicsr``, ``hat-sr``) print ``error: <message>`` and exit with status 2 for these instead of a traceback.
"""


class HatError(Exception):
    """A problem with the user's input (a file, key or value), described in one line that names it."""
