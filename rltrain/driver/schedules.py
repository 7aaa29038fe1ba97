"""Schedules: which batch the learner sees next (placeholder; filled in by the structure change)."""

from __future__ import annotations

SCHEDULES: dict[str, str] = {
    "sync": "rltrain.driver.schedules:SyncSchedule",
    "one_step_off": "rltrain.driver.schedules:OneStepOffSchedule",
}


def check_schedule_name(name: str) -> None:
    """Raise ValueError listing the allowed schedules unless `name` is registered or an import path."""
    if name in SCHEDULES:
        return
    if isinstance(name, str) and name.count(":") == 1 and all(name.split(":")):
        return
    raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)} (or an import path pkg.mod:Class)")
