"""config/: the typed config tree of a run (YAML + dotted command-line overrides), validated at start-up.

May import: the standard library, pydantic, yaml, `algorithms` (to validate the algorithm section) and
`rltrain.engines` / `rltrain.driver.flow.schedules` registries (to validate names). Nothing that starts actors.
"""

from rltrain.config.derived import engine_dtype, engine_options
from rltrain.config.schema import Config, ConfigError, load, to_dict

__all__ = ["Config", "ConfigError", "engine_dtype", "engine_options", "load", "to_dict"]
