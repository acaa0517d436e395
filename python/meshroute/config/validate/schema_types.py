"""The vocabulary of :mod:`.schema`: field types and message descriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]


@dataclass(frozen=True)
class ListOf:
    item: FieldType


@dataclass(frozen=True)
class MapOf:
    value: FieldType


FieldType = str | Enum | ListOf | MapOf

# Scalars. The three duration flavours encode C1 and its exceptions (§1 "Durations"):
# "duration" = >=1ms and whole ms; "duration_idle" = 0 or C1; "duration_any" = any valid value.
SCALARS = frozenset(
    {"string", "bool", "int32", "uint32", "uint64", "double", "duration", "duration_idle", "duration_any"}
)


@dataclass(frozen=True)
class Message:
    fields: Mapping[str, FieldType]
    required: tuple[str, ...] = ()
    oneofs: tuple[tuple[str, ...], ...] = ()
    # removed field -> advice; the API server rejects them (§1, §2.2, §2.12, §9)
    legacy: Mapping[str, str] = field(default_factory=dict)


STR = "string"
STRS = ListOf(STR)
LABELS = MapOf(STR)
SM = "StringMatch"
