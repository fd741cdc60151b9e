"""Datasets; every ``*_dataset.py`` here is imported so its classes register in DATASET_REGISTRY."""
from hat_arch.registration import import_modules

import_modules(__name__, __path__[0], '_dataset.py')
