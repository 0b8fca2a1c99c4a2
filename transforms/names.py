"""AssignStems: collision-free output names; also the fan-out shuffle after the reader."""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from transforms.model import paths
from transforms.model.types import Sample
from transforms.storage import pickles


def _key(sample: Sample):
    stem = paths.sample_stem(sample.name)
    return paths.collision_key(stem), (sample.index, stem, pickles.pack(sample))


def _assign(group) -> list[Sample]:
    _, members = group
    members = list(members)
    stems = paths.unique_stems((index, stem) for index, stem, _ in members)
    return [dataclasses.replace(pickles.unpack(s), stem=stems[index])
            for index, _, s in members]


class AssignStems(beam.PTransform):
    """Sample -> Sample with a unique safe `stem`.

    The GroupByKey on the case-folded stem is also the reshuffle that spreads samples over
    workers after the single-worker reader (without it, fusion would keep every sample on
    the reader's worker).
    """

    def expand(self, samples):
        return (
            samples
            | "KeyByStem" >> beam.Map(_key)
            # (collision key, (index, stem, packed Sample))
            | "GroupByStem" >> beam.GroupByKey()
            | "Assign" >> beam.FlatMap(_assign)
        )
