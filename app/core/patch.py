"""The base of every PATCH body: an omitted field is left unchanged, and only a field marked ``Nullable`` takes null.

Optional fields are typed ``X | None = None`` so that "not sent" reads as ``None`` in code, but an explicit
``null`` is a different request: "clear this value". That is only meaningful where the stored value may be empty;
elsewhere it would reach a NOT NULL column, so it is refused as invalid, and the OpenAPI document says so.

    class EndpointUpdate(PatchBody):
        url: AnyHttpUrl | None = None                                       # null refused
        description: Annotated[str | None, Nullable] = Field(None, max_length=200)  # null clears it
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError


class _NullableMarker:
    def __repr__(self) -> str:
        return "Nullable"


Nullable = _NullableMarker()
"""``Annotated`` metadata: a PATCH may set this field to null (its stored value may be empty)."""


def is_nullable(field: FieldInfo) -> bool:
    return any(item is Nullable for item in field.metadata)


def _document_nullability(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Drop the ``null`` alternative (and the ``null`` default) of every field that refuses null."""
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        prop = properties.get(field.alias or name)
        if prop is None or is_nullable(field) or "anyOf" not in prop:
            continue
        choices = [choice for choice in prop.pop("anyOf") if choice.get("type") != "null"]
        if prop.get("default", ...) is None:
            del prop["default"]
        if len(choices) == 1:
            prop.update({key: value for key, value in choices[0].items() if key not in prop})
        else:
            prop["anyOf"] = choices


class PatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_nullability)

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_nullable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name is not None and not is_nullable(cls.model_fields[info.field_name]):
            raise PydanticCustomError("null_not_allowed", "This field cannot be null; omit it to leave it unchanged")
        return value
