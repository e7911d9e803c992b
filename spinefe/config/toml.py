"""Write a Config as a commented TOML file (`spinefe config default`).

Hand-written because the TOML writers on PyPI (tomli-w) emit no comments, and the comments (units,
allowed ranges, sources) are the point of this file.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from spinefe.config.sections import Config
from spinefe.config.sources import SOURCES


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, BaseModel):  # a small section: its set keys as an inline table
        v = {k: getattr(v, k) for k in type(v).model_fields if getattr(v, k) is not None}
    if isinstance(v, Mapping):  # an inline table of bare keys (PETSc options, a material)
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    return repr(v)


def _range(info: FieldInfo) -> str:
    bounds = []
    for m in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{sym} {getattr(m, attr)}")
    return f" ({', '.join(bounds)})" if bounds else ""


def _table(model: BaseModel, lines: list[str]) -> None:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):  # a small section (a material): one inline table
            lines.append(f"# {info.description}")
            lines.append(f"{name} = {_value(value)}")
            continue
        if info.description:
            lines.append(f"# {info.description}{_range(info)}")
        lines.append(f"# {name} =" if value is None else f"{name} = {_value(value)}")


def default_toml() -> str:
    """The built-in default segment as commented TOML (`spinefe config default`)."""
    return config_toml(Config())


def config_toml(cfg: Config) -> str:
    """`cfg` as TOML with a comment (unit, range, source) above every key."""
    lines = [
        "# spinefe segment configuration (L4-L5).",
        "# Units are in the key names (mm, deg); frame DICOM LPS (+x left, +y posterior,",
        "# +z superior), origin at the centre of the L4-L5 disc mid-plane.",
        "# Unknown keys are rejected. Sources cited in [brackets]:",
    ]
    lines += [f"#   [{k}] {v}" for k, v in SOURCES.items()]
    lines.append("#   [tg43-i125] shared/reference/tg43-i125.md (model 6711 capsule)")
    for name in Config.model_fields:
        value = getattr(cfg, name)
        if name == "seeds":
            lines += ["", "# Seeds: capsule centre (mm) and axis direction (any length, not zero)."]
            for seed in value:
                lines += [
                    "[[seeds]]",
                    f"position_mm = {_value(seed.position_mm)}",
                    f"direction = {_value(seed.direction)}",
                ]
            continue
        lines += ["", f"[{name}]"]
        if type(value).__doc__:
            lines.append(f"# {type(value).__doc__.splitlines()[0]}")
        _table(value, lines)
    return "\n".join(lines) + "\n"
