"""The configuration reference, ``docs/configuration.md``, rendered from the pydantic models.

    python -m router.config_reference docs/configuration.md   # rewrite the file
    python -m router.config_reference                         # print it

Every key of the config file gets a row: its path (``tenants[].budget.daily_usd``),
type with its bounds, default and the field's ``description``. The models are
the truth, so the page cannot drift from what ``load_config`` accepts:
``tests/test_docs.py`` fails when the file differs from what this renders.
"""

from __future__ import annotations

import math
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from router.config import Config

__all__ = ["Row", "main", "missing_descriptions", "reference_rows", "render"]

COMMAND = "python -m router.config_reference docs/configuration.md"
# How a key's path continues into a section: tenants.name, tenants[].name, tiers.<tier>.model.
_SEPARATORS = (".", "[", "<")

INTRO = f"""\
# Configuration reference

<!-- Generated from the pydantic models behind router.config.Config by
`{COMMAND}`.
Do not edit by hand: change a field's description and regenerate. -->

`thinkroute serve --config FILE` reads one YAML file. `${{NAME}}` anywhere in a
value is replaced by the environment variable `NAME` (unset is an error), so
keys can stay in the environment. The file is validated when it is loaded, and
an error names the file and the field: unknown keys are refused, both tiers
must name a `model_name` from `model_list`, a tier's `reasoning_effort` must be
one its provider accepts (LiteLLM is asked; nothing is dropped silently), and
an API key or tenant name may appear only once. Without `--config` the proxy
builds a config from the environment (see [the README](../README.md#the-proxy)).

The README shows [a whole file](../README.md#the-proxy) and
[tenants with budgets](../README.md#tenants-budgets-and-rate-limits);
`deploy/config.sim.yaml` and `deploy/config.compose.yaml` are complete, working
ones. In the paths below `a.b` is the key `b` inside the mapping `a`, `a[]` an
item of the list `a`, and `tiers.<tier>` the `fast` or the `reasoning` entry.
A default of "unset" means the key may be left out (or set to `null`).
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One key of the config file."""

    path: str
    type: str
    default: str
    description: str


def reference_rows(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[Row]:
    """Every key under ``model``, depth first, each followed by the keys inside it."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield Row(path, _type_of(field), _default_of(field), _description_of(field))
        child = _nested_model(field.annotation)
        if child is not None:
            inner, suffix = child
            yield from reference_rows(inner, f"{path}{suffix}.")


def missing_descriptions() -> list[str]:
    """Paths of keys without a description (there should be none)."""
    return [row.path for row in reference_rows() if not row.description]


def render() -> str:
    """The whole page: an introduction, then a table per top-level section."""
    parts = [INTRO]
    rows = list(reference_rows())
    for section in Config.model_fields:
        inside = [
            r
            for r in rows
            if r.path == section or r.path.startswith(tuple(section + s for s in _SEPARATORS))
        ]
        head, *keys = inside
        parts.append(f"## `{section}`\n\n{head.description}. Type: {head.type}.\n")
        if keys:
            table = ["| key | type | default | description |", "|---|---|---|---|"]
            table += [
                f"| `{r.path}` | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.description)} |"
                for r in keys
            ]
            parts.append("\n".join(table) + "\n")
        elif head.default:
            parts.append(f"Default: {head.default}.\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference, or write it to the file named as the one argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(f"usage: {COMMAND.replace('docs/configuration.md', '[FILE]')}", file=sys.stderr)
        return 2
    text = render()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
        print(f"wrote {args[0]}")
    else:
        sys.stdout.write(text)
    return 0


# -- rendering one field ---------------------------------------------------------------


def _nested_model(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model inside a field and how its keys' paths continue: ``.``, ``[].``, ``.<tier>``."""
    if _is_model(annotation):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args and _is_model(args[0]):
        return args[0], "[]"
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return args[1], ".<tier>" if _literal_values(args[0]) == ("fast", "reasoning") else ".<key>"
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _literal_values(annotation: Any) -> tuple[Any, ...] | None:
    return typing.get_args(annotation) if typing.get_origin(annotation) is Literal else None


def _type_of(field: FieldInfo) -> str:
    annotation = field.annotation
    optional = False
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    text = _type_name(annotation)
    bounds = _bounds(field)
    if bounds:
        text = f"{text} {bounds}"
    return f"{text}, or unset" if optional else text


def _type_name(annotation: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Any: "any"}
    if annotation in names:
        return names[annotation]
    values = _literal_values(annotation)
    if values is not None:
        quoted = [f"`{v}`" for v in values]
        return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    if _is_model(annotation):
        return "mapping"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return f"list of {_plural(_type_name(args[0]))}" if args else "list"
    if origin is dict:
        if not args or args[1] is Any:
            return "mapping"
        return f"mapping of {_type_name(args[0])} to {_plural(_type_name(args[1]))}"
    return getattr(annotation, "__name__", str(annotation))


def _plural(name: str) -> str:
    if " or " in name:
        return name
    return {"any": "anything", "boolean": "booleans"}.get(name, name + "s")


def _bounds(field: FieldInfo) -> str:
    """Numeric bounds as an interval ("in [0, 1]", "> 0") and length limits, from metadata."""
    low = high = None
    shortest = longest = None
    pieces = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"[{_number(item.ge)}"
        elif isinstance(item, annotated_types.Gt):
            low = f"({_number(item.gt)}"
        elif isinstance(item, annotated_types.Le):
            high = f"{_number(item.le)}]"
        elif isinstance(item, annotated_types.Lt):
            high = f"{_number(item.lt)})"
        elif isinstance(item, annotated_types.MinLen):
            shortest = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            longest = item.max_length
        elif getattr(item, "pattern", None):
            pieces.append(f"matching `{item.pattern}`")
    if low and high:
        pieces.insert(0, f"in {low}, {high}")
    elif low:
        pieces.insert(0, ("≥ " if low[0] == "[" else "> ") + low[1:])
    elif high:
        pieces.insert(0, ("≤ " if high[-1] == "]" else "< ") + high[:-1])
    if shortest and longest:
        pieces.insert(0, f"of {shortest} to {longest} characters")
    elif shortest:
        plural = "s" if shortest > 1 else ""
        pieces.insert(0, f"of at least {shortest} character{plural}")
    elif longest:
        pieces.insert(0, f"of at most {longest} characters")
    return ", ".join(pieces)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e4:
        value = int(value)  # 1e12 reads better as 1,000,000,000,000
    return f"{value:_}".replace("_", ",") if isinstance(value, int) else f"{value:g}"


def _default_of(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.get_default(call_default_factory=True, validated_data={})
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "—"  # a section: its keys carry the defaults
    if value is None:
        return "unset"
    dumped = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False)
    # A scalar dumps as a document ("true\n...\n"); a collection as one flow line.
    return "`" + dumped.strip().removesuffix("...").strip() + "`"


def _description_of(field: FieldInfo) -> str:
    text = " ".join((field.description or "").split())
    text = re.sub(r"``(.+?)``", r"`\1`", text)  # a docstring's reST literals, as Markdown
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def _cell(text: str) -> str:
    # A pipe would end the table cell, even inside backticks.
    return text.replace("|", "\\|")


if __name__ == "__main__":
    sys.exit(main())
