"""BasicSR's EnlargedSampler, able to start an epoch part-way: a resumed run neither replays nor skips samples."""
from __future__ import annotations

import itertools
from typing import Iterator

from basicsr.data.data_sampler import EnlargedSampler


class ResumableSampler(EnlargedSampler):
    """``EnlargedSampler`` (same order for the same epoch) whose :meth:`set_epoch` can skip the epoch's first indices.

    The indices are dropped before any sample is loaded, so resuming in the middle of a large epoch is instant.
    """

    def __init__(self, dataset, num_replicas: int, rank: int, ratio: int = 1):
        super().__init__(dataset, num_replicas, rank, ratio)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its ``start``-th index of this process on."""
        super().set_epoch(epoch)
        self.start = min(max(start, 0), self.num_samples)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start
