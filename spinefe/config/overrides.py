"""One path for configuration overrides: dotted keys with TOML values.

`--set mesh.size_mm=2.0`, `--petsc ksp_rtol=1e-10` (the key `mechanics.petsc.ksp_rtol`), the
flags of a command (`--activity-mCi 0.6` is `dosimetry.activity_mCi`) and a study's [axes] and
[[cases]] all become a mapping {dotted key: value}, applied here to the plain data of a
configuration before it is validated; validation then names any bad key and its allowed range.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from spinefe.common.errors import ConfigError
from spinefe.config.loading import parse_config
from spinefe.config.sections import Config

#: The PETSc options of the mechanics solves ([mechanics.petsc]; `--petsc KEY=VALUE`).
PETSC_KEY = "mechanics.petsc"


def parse_value(text: str) -> Any:
    """`text` read as a TOML value (`2.0` a float, `[1, 2]` a list, `true` a bool); text that is
    not a TOML value (a bare word such as `mumps`) is the string itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_pairs(pairs: Iterable[str], option: str = "--set", prefix: str = "",
                example: str = "mesh.size_mm=2.0") -> dict[str, Any]:
    """`KEY=VALUE` strings as {prefix + KEY: value} (`parse_value`; a later pair of the same key
    wins); ConfigError naming `option` and the pair when one is not KEY=VALUE."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option}: {pair!r}, expected KEY=VALUE (e.g. {example})")
        out[prefix + key.strip()] = parse_value(value)
    return out


def petsc_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`--petsc KEY=VALUE` pairs as the overrides `mechanics.petsc.KEY`."""
    return parse_pairs(pairs, "--petsc", f"{PETSC_KEY}.", "ksp_rtol=1e-10")


def set_dotted(data: dict, key: str, value: Any) -> None:
    """data[a][b] = value for the key 'a.b', making the tables on the way that are missing (or
    None: an unset optional table); ConfigError naming the key when a part is not a table.

    An unknown key is not refused here: the validation of the result names it."""
    *parents, last = key.split(".")
    node = data
    for i, part in enumerate(parents):
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{key!r}: {'.'.join(parents[:i + 1])!r} is not a table")
    node[last] = value


def apply(data: dict, overrides: Mapping[str, Any]) -> dict:
    """`data` with every dotted key of `overrides` set (in order; in place); returns `data`."""
    for key, value in overrides.items():
        set_dotted(data, key, copy.deepcopy(value))
    return data


def merge(data: dict, update: Mapping[str, Any]) -> dict:
    """Deep-merge the partial mapping `update` into `data` (tables merge, other values replace;
    in place); returns `data`."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(data.get(key), dict):
            merge(data[key], value)
        else:
            data[key] = copy.deepcopy(value)
    return data


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys ({"mesh": {"size_mm": 1}} -> {"mesh.size_mm": 1}); a dotted
    key stays as it is. So an unquoted dotted key in TOML (a nested table) sets one value
    instead of replacing a whole section."""
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def override(cfg: Config, overrides: Mapping[str, Any]) -> Config:
    """`cfg` with the dotted `overrides` set, validated again (ConfigError naming a bad key);
    `cfg` itself when there are none."""
    if not overrides:
        return cfg
    return parse_config(apply(cfg.model_dump(mode="json"), overrides))
