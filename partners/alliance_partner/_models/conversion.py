"""Reading the API's JSON into the models and writing requests as JSON."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from alliance_partner._models import batches, common, programs, referrals, reports, sandbox, statements, webhooks

T = TypeVar("T")

#: Every name the models' annotations use (aliases, models, ``datetime``...).
_NAMESPACE: dict[str, Any] = {
    name: value
    for topic in (common, referrals, programs, batches, webhooks, statements, reports, sandbox)
    for name, value in vars(topic).items()
}


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    # Read in the topics' namespaces, whatever ``__module__`` the package gives the models.
    return get_type_hints(cls, globalns=_NAMESPACE)


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build ``cls`` from the API's JSON: nested models, lists, dates and times converted; unknown keys ignored."""
    hints = _hints(cls)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not item.init or item.metadata.get("local"):
            continue
        if item.name in data:
            values[item.name] = _convert(hints[item.name], data[item.name])
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            values[item.name] = None  # a field an older API does not send
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [option for option in get_args(hint) if option is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = get_args(hint)
        return [_convert(item, element) for element in value]
    if origin is dict:
        _, item = get_args(hint)
        return {key: _convert(item, element) for key, element in value.items()}
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is date:
        return date.fromisoformat(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    return value


def to_json(value: Any) -> Any:
    """A request model (or plain data) as JSON-ready data; None fields are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: to_json(getattr(value, item.name))
            for item in dataclasses.fields(value)
            if getattr(value, item.name) is not None
        }
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to the API must be timezone-aware")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
