"""training/sampler.py: ResumableSampler starts an epoch part-way without replaying or skipping samples."""
from __future__ import annotations

import pytest
from basicsr.data.data_sampler import EnlargedSampler

from hat_arch.training.sampler import ResumableSampler

DATASET = list(range(7))


@pytest.mark.parametrize('num_replicas, rank, ratio', [(1, 0, 1), (2, 1, 3)])
def test_a_whole_epoch_is_basicsrs_order(num_replicas, rank, ratio):
    sampler, reference = ResumableSampler(DATASET, num_replicas, rank, ratio), EnlargedSampler(DATASET, num_replicas,
                                                                                                rank, ratio)
    for epoch in (0, 5):
        sampler.set_epoch(epoch)
        reference.set_epoch(epoch)
        assert list(sampler) == list(reference) and len(sampler) == len(reference) == sampler.num_samples


def test_an_epoch_resumed_part_way_yields_exactly_the_rest():
    sampler = ResumableSampler(DATASET, 1, 0, 3)
    sampler.set_epoch(4)
    whole = list(sampler)
    sampler.set_epoch(4, start=5)
    assert list(sampler) == whole[5:] and len(sampler) == len(whole) - 5
    sampler.set_epoch(5)  # the next epoch starts from its beginning again
    assert len(list(sampler)) == len(sampler) == sampler.num_samples == 21


@pytest.mark.parametrize('start, remaining', [(-3, 7), (100, 0)])
def test_start_is_clamped_to_the_epoch(start, remaining):
    sampler = ResumableSampler(DATASET, 1, 0)
    sampler.set_epoch(0, start=start)
    assert len(sampler) == len(list(sampler)) == remaining
