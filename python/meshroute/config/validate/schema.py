"""The shape of every Istio networking message: field names (lowerCamelCase), types, required
fields, oneof groups and removed legacy fields (semantics §2-§6 field tables and §8.7).

Data only; :mod:`meshroute.config.validate.fields` walks documents against it. A field type is
a scalar name (lower case), an :class:`Enum`, a :class:`ListOf`, a :class:`MapOf` (string keys)
or the name of another message (capitalised).
"""

from __future__ import annotations

from collections.abc import Mapping

from meshroute.config.validate.schema_policies import DR_MESSAGES, GW_MESSAGES, SC_MESSAGES, SE_MESSAGES
from meshroute.config.validate.schema_types import SCALARS, Enum, FieldType, ListOf, MapOf, Message
from meshroute.config.validate.schema_vs import VS_MESSAGES

__all__ = ["KIND_ROOT", "MESSAGES", "SCALARS", "Enum", "FieldType", "ListOf", "MapOf", "Message"]

MESSAGES: Mapping[str, Message] = {**VS_MESSAGES, **DR_MESSAGES, **GW_MESSAGES, **SE_MESSAGES, **SC_MESSAGES}

# The spec message of each kind meshroute validates.
KIND_ROOT: Mapping[str, str] = {
    "VirtualService": "VirtualService",
    "DestinationRule": "DestinationRule",
    "Gateway": "Gateway",
    "ServiceEntry": "ServiceEntry",
    "WorkloadEntry": "WorkloadEntry",
    "Sidecar": "Sidecar",
}
