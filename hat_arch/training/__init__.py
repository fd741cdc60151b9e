"""The pieces of ``basicsr train`` that BasicSR 1.4.2 lacks, one concept per module.

- :mod:`.options`: command-line flags and option-file checks, then BasicSR's ``parse_options``;
- :mod:`.distributed`: joining the process group of torchrun / srun (gloo on CPU, nccl on GPU);
- :mod:`.loaders`: BasicSR's train/val dataloaders, with a sampler that can start part-way into an epoch;
- :mod:`.saves`: atomic ``.pth`` / ``.state`` writes and the start-up check of the experiment folder;
- :mod:`.resume`: the newest complete training state, loaded on any device;
- :mod:`.rng`: the random states that exact continuation needs, in a ``weights_only``-loadable form;
- :mod:`.nonfinite`: skipping optimizer steps with non-finite gradients, stopping after too many in a row;
- :mod:`.validation`: validation on every process when the model allows it, otherwise on rank 0;
- :mod:`.logs`: the run's log file, also when BasicSR's logger was set up earlier in the process.
- :mod:`.run_folder`: a run holds its experiment (results) folder while it runs; a second run of its name is refused;
- :mod:`.launch`: a pipeline as a command: one-line user errors, Ctrl-C and SIGTERM as a stop with a note.

The loop that ties them together is :func:`hat_arch.train.train_pipeline`.
"""
