"""Name-or-import-path registries, shared by the seams that take a class by name (engines, schedules,
environments): a registered name maps to "module:Class"; anything of the form `pkg.mod:Class` is an
import path to a user's class. Checking a name imports nothing; loading imports and checks methods.
May import: the standard library only.
"""

from __future__ import annotations

import importlib

# trainer.schedule: registered name -> "module:Class" (rltrain/driver/flow/schedules.py); the config checks
# names here without importing the driver
SCHEDULES: dict[str, str] = {
    "sync": "rltrain.driver.flow.schedules:SyncSchedule",
    "async": "rltrain.driver.flow.schedules:AsyncSchedule",
    "one_step_off": "rltrain.driver.flow.schedules:OneStepOffSchedule",
    "replay": "rltrain.driver.flow.schedules:ReplaySchedule",
}


def is_import_path(name: object) -> bool:
    return isinstance(name, str) and name.count(":") == 1 and all(name.split(":"))


def check_name(name: str, registry: dict[str, str], kind: str, allowed: str) -> None:
    """Raise ValueError listing `allowed` unless `name` is registered or an import path."""
    if name in registry or is_import_path(name):
        return
    raise ValueError(f"unknown {kind} {name!r}; allowed: {allowed} (or an import path pkg.mod:Class)")


def load_class(name: str, registry: dict[str, str], key: str, methods: tuple[str, ...] = (),
               protocol: str = "") -> type:
    """The class `name` stands for; ValueError naming the config `key` when it cannot be imported or
    lacks one of `methods` (the protocol it should follow)."""
    target = registry.get(name, name)
    mod_name, _, attr = target.partition(":")
    try:
        cls = importlib.import_module(mod_name)
        for part in attr.split("."):  # "pkg.mod:Outer.Inner" reaches a nested class, as in algorithms/, rewards/
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{key}={name!r}: cannot import {target!r}: {e}") from None
    missing = [m for m in methods if not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"{key}={name!r}: {target} does not follow the {protocol}: missing {', '.join(missing)}")
    return cls


def check_schedule_name(name: str) -> None:
    """Raise ValueError listing the allowed schedules unless `name` is registered or an import path."""
    check_name(name, SCHEDULES, "schedule", ", ".join(SCHEDULES))


def schedule_class(name: str) -> type:
    """The schedule class of `trainer.schedule` (imports it)."""
    check_schedule_name(name)
    return load_class(name, SCHEDULES, "trainer.schedule")
