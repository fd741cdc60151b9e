"""``ARCH_REGISTRY`` for hat_arch's networks, usable before (or without) BasicSR being imported.

``@ARCH_REGISTRY.register()`` registers in BasicSR's registry at once when ``basicsr`` is loaded, and otherwise
records the class: :func:`hat_arch.compat.register` hands it over when something imports ``basicsr``. So a network
module loads without BasicSR (``hat-sr upscale`` never imports it) and still registers as BasicSR's own networks do.
"""
from __future__ import annotations

import sys


class DeferredRegistry:
    """Forwards ``register`` to BasicSR's registry ``name`` once ``basicsr`` is loaded; records classes until then."""

    def __init__(self, name: str):
        self.name = name
        self.waiting: list[type] = []

    def _basicsr_registry(self):
        module = sys.modules.get('basicsr.utils.registry')
        return getattr(module, self.name, None)

    def register(self, obj: type | None = None):
        def add(cls: type) -> type:
            registry = self._basicsr_registry()
            if registry is None:
                self.waiting.append(cls)
            else:
                registry.register(cls)
            return cls

        return add if obj is None else add(obj)

    def hand_over(self) -> None:
        """Register the recorded classes in BasicSR's registry (which must be loaded)."""
        registry = self._basicsr_registry()
        while self.waiting:
            registry.register(self.waiting.pop(0))


ARCH_REGISTRY = DeferredRegistry('ARCH_REGISTRY')
