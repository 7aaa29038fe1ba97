"""Stage implementations; importing this package fills `algorithms.registry.REGISTRY`."""

from algorithms.stages import (advantages, advantages_gae, aggregation, corrections, data_policies, objectives_clip,  # noqa: F401
                               objectives_seq, regularizers, selectors)
