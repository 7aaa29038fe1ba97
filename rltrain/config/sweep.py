"""The config of a sweep (`launch/sweep.py --config configs/sweeps/<x>.yaml`), on the same loader.

A sweep is a base run config, fixed overrides for every trial, and the searched parameters (dotted
run-config keys). `search: grid` runs every combination of the parameters' `values` (times
`num_samples`); `search: random` draws `num_samples` trials, each parameter from its `values` or
its distribution (`uniform`, `log_uniform`, `int_uniform` between `min` and `max`). The scheduler
`fifo` runs every trial to the end; `asha` stops trials whose `metric` trails at its rungs
(`grace_period` steps, then x `reduction_factor`), judged at the trials' evaluations.

Every trial's run config is validated before anything starts: for grid every combination, for
random every combination of each parameter's values or its `min` and `max`. An error names the
sweep key or the trial's override and the run-config key.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, model_validator

from rltrain.config.loader import ConfigError, Section, load_config


class ParameterSpec(Section):
    values: list[Any] | None = None  # grid axis, or a random choice
    distribution: Literal["uniform", "log_uniform", "int_uniform"] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "ParameterSpec":
        if (self.values is None) == (self.distribution is None):
            raise ValueError("give either `values: [...]` or `distribution` with `min` and `max`")
        if self.values is not None and not self.values:
            raise ValueError("`values` is empty")
        if self.distribution is not None:
            if self.min is None or self.max is None or not self.min < self.max:
                raise ValueError(f"distribution {self.distribution} needs min < max, got min={self.min} max={self.max}")
            if self.distribution == "log_uniform" and self.min <= 0:
                raise ValueError(f"log_uniform needs min > 0, got {self.min}")
        return self

    def corners(self) -> list[Any]:
        """The values every trial config is validated with: all `values`, or the distribution's ends."""
        if self.values is not None:
            return list(self.values)
        if self.distribution == "int_uniform":
            return [int(self.min), int(self.max)]
        return [self.min, self.max]


class SchedulerSpec(Section):
    name: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1)      # asha: steps before a trial can be stopped
    reduction_factor: int = Field(2, ge=2)  # asha: keep the best 1/reduction_factor at each rung


class TrialResources(Section):
    cpus: float = Field(1.0, gt=0)  # logical CPUs per trial, split between its actors; torch threads = max(1, floor(cpus))


class SweepConfig(Section):
    base: str | None = None  # the run config every trial starts from (null: the embedded default)
    overrides: dict[str, Any] = Field(default_factory=dict)    # dotted run-config keys, the same for every trial
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)  # dotted run-config key -> what to search
    search: Literal["grid", "random"] = "grid"
    num_samples: int = Field(1, ge=1)  # grid: repeats of the whole grid; random: trials
    metric: str = "eval/pass@1"
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    resources_per_trial: TrialResources = Field(default_factory=TrialResources)
    max_concurrent: int = Field(0, ge=0)  # 0: as many trials at once as the cluster's CPUs allow
    name: str | None = None  # default: <sweep file name>-<time>
    output_dir: str = "runs/sweeps"
    seed: int = 0  # random search's draws
    num_cpus: int = Field(0, ge=0)  # local Ray: CPUs to declare (0 = all); ignored on a cluster

    @model_validator(mode="after")
    def _searchable(self) -> "SweepConfig":
        if not self.parameters:
            raise ValueError("parameters: nothing to search; give at least one dotted run-config key")
        if self.search == "grid":
            bad = [k for k, p in self.parameters.items() if p.values is None]
            if bad:
                raise ValueError(f"search: grid needs `values` for every parameter; {bad} give a distribution "
                                 f"(use search: random)")
        both = sorted(set(self.parameters) & set(self.overrides))
        if both:
            raise ValueError(f"{both} are both searched (parameters) and fixed (overrides)")
        return self

    def validation_points(self, limit: int = 256) -> list[dict[str, Any]]:
        """The parameter combinations every trial config is checked with before the sweep starts."""
        keys = sorted(self.parameters)
        combos = itertools.islice(itertools.product(*(self.parameters[k].corners() for k in keys)), limit)
        return [dict(zip(keys, c)) for c in combos]


def load_sweep(path: str, overrides: list[str] | None = None) -> SweepConfig:
    """A sweep file plus `key=value` overrides of the sweep's own keys, validated; then every trial's
    run config is validated too (`check_trials`)."""
    sweep = load_config(SweepConfig, path, overrides or [])
    check_trials(sweep)
    return sweep


def trial_overrides(sweep: SweepConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The dotted overrides one trial runs with: the sweep's fixed ones, then its parameters."""
    return {**sweep.overrides, **params}


def check_trials(sweep: SweepConfig) -> None:
    from rltrain.config.schema import load

    for params in sweep.validation_points():
        try:
            load(sweep.base, trial_overrides(sweep, params))
        except ConfigError as e:
            shown = " ".join(f"{k}={v}" for k, v in params.items())
            raise ConfigError(f"the trial with {shown}: {e}") from None
