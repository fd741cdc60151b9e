"""Building blocks of the HAT network that the paper does not describe: attention kernels, window bookkeeping,
head padding, the lean MLP, stochastic depth, weight initialisation, padding and memory formats (as timm keeps
``layers/`` apart from ``models/``)."""
