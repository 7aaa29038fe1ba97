"""Stage implementations; importing this package fills `algorithms.registry.REGISTRY`."""

from algorithms.stages import (advantages, aggregation, data_policies, objectives_clip, objectives_seq,  # noqa: F401
                               regularizers, selectors)
