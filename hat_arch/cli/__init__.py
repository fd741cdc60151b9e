"""The subcommands of ``basicsr`` and ``hat-sr``, one module each with ``main(argv, prog) -> int``.

The dispatcher behind the console scripts is :mod:`hat_arch_launcher`; its entry points are here too, to call the
commands from Python.
"""
from hat_arch_launcher import basicsr_main, hat_sr_main

__all__ = ['basicsr_main', 'hat_sr_main']
