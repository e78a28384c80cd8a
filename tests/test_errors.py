"""One wording for pydantic validation problems, whatever the source (config file, flags, data row)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rolenrules.errors import ConfigError, validate_config, validation_problems


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=1)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    max_tokens: int = 8
    inner: Inner | None = None


@pytest.mark.parametrize(("values", "flags", "message"), [
    ({"name": "a", "colour": "red"}, False, "cfg.yaml: field 'colour': unknown option"),
    ({}, False, "cfg.yaml: field 'name': required"),
    ({"name": "a", "inner": {"size": 0}}, False, "cfg.yaml: field 'inner.size': Input should be greater than or equal to 1"),
    ({"name": "a", "max_tokens": "many"}, True, "cfg.yaml: --max-tokens: Input should be a valid integer"),
    ({"max_tokens": "x"}, False, "cfg.yaml: field 'name': required; field 'max_tokens': Input should be a valid integer"),
])
def test_config_errors_name_the_source_and_every_field(values: dict, flags: bool, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(Outer, values, "cfg.yaml", flags=flags)
    assert str(caught.value).startswith(message)


def test_data_problems_read_unknown_keys_as_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"name": "a", "extra": 1})
    assert validation_problems(caught.value) == [("extra", "unknown field")]
