"""Training/testing models; every ``*_model.py`` here is imported so its classes register in MODEL_REGISTRY."""
from hat_arch.registration import import_modules

import_modules(__name__, __path__[0], '_model.py')
