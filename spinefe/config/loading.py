"""Read and validate a configuration: TOML or a mapping in, a frozen `Config` out, or a
`ConfigError` whose message names every bad key and the allowed values.

Geometric consistency (a lesion inside L4, seeds inside bone) needs the segment's layout, a layer
above this one: the edge that loads a segment's config also calls
`spinefe.geometry.layout.check_layout`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ValidationError

from spinefe.common.errors import ConfigError
from spinefe.config.sections import Config, Materials


def format_validation_error(err: ValidationError, heading: str = "invalid configuration",
                            prefix: str = "",
                            keys: str = "`spinefe config default` lists all keys") -> str:
    """Every error of a pydantic validation, one line each: the dotted key (after `prefix`, the
    place of the validated mapping, e.g. "job.") and the message; an unknown key says where
    the known ones are listed (`keys`). The one formatter of pydantic errors in spinefe."""
    lines = []
    for e in err.errors():
        # ("[key]": pydantic's mark of a bad key of a table, e.g. mechanics.petsc.-ksp_rtol.)
        key = ".".join(str(p) for p in e["loc"] if p != "[key]")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (check the spelling; {keys})"
        elif e["type"] == "missing":
            msg = "missing (a required key)"
        elif e["type"].endswith("_type") or e["type"] == "finite_number":
            # Strict types: say what was given, e.g. a quoted number or true for a length.
            msg = f"{msg}, got {e['input']!r}"
        # Checks of a whole section have no location; their message starts with the key.
        lines.append(f"{prefix}{key}: {msg}" if key else msg)
    return f"{heading}:\n  " + "\n  ".join(lines)


def validate_strict[M: BaseModel](model: type[M], data: dict) -> M:
    """`model` from a mapping read from TOML, without coercion: a number must be a number (not
    a string or a boolean; an integer is a number), a flag a boolean, and a number finite.
    Validated as JSON in pydantic's strict mode, which takes arrays for tuples; a TOML date or
    time becomes its text there and is refused as the wrong type, naming its key."""
    return model.model_validate_json(json.dumps(data, default=str), strict=True)


def parse_config(data: dict) -> Config:
    """Validate a plain mapping; raises ConfigError naming every bad key. A material table
    without E_MPa or nu takes the default material's (e.g. a table giving only `fibres`)."""
    materials = data.get("materials")
    if isinstance(materials, dict):
        defaults = Materials()
        data = {**data, "materials": {
            name: ({"E_MPa": getattr(defaults, name).E_MPa, "nu": getattr(defaults, name).nu,
                    **table} if isinstance(table, dict) and name in Materials.model_fields
                   else table)
            for name, table in materials.items()}}
    try:
        return validate_strict(Config, data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """The TOML file `path` as a mapping; ConfigError naming `what` and the path when it is
    missing or not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path}: a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: not a text (UTF-8) file, so not TOML") from None
    except OSError as err:
        raise ConfigError(f"{what} {path}: cannot be read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate CONFIG.toml; None gives the built-in default segment."""
    if path is None:
        return Config()
    return parse_config(read_toml(path))
