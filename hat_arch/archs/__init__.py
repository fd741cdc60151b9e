"""Network architectures; every ``*_arch.py`` here is imported so its classes register in ARCH_REGISTRY."""
from hat_arch.registration import import_modules

import_modules(__name__, __path__[0], '_arch.py')
