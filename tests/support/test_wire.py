"""support.wire: strict cattrs converters and one readable line for the first problem."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest

from opendispatch.support.wire import Invalid, WireError, hooked, make_converter, parser, structure


@attrs.define
class Entry:
    WIRE_SHAPE: ClassVar[str] = "an object with a name"

    name: str
    size: int | None = None


@attrs.define
class Body:
    jobId: str
    entries: list[Entry] = attrs.Factory(list)
    ok: bool = False
    cost: float | None = None
    lines: tuple[str, ...] = ()
    even: int = attrs.field(default=0, metadata=hooked(lambda value, _: _even(value)))


def _even(value: object) -> int:
    if not isinstance(value, int) or value % 2:
        raise Invalid("must be an even integer")
    return value


CONVERTER = make_converter()


def test_a_body_is_read_with_its_keys_as_attribute_names() -> None:
    body = structure(CONVERTER, {"jobId": "j", "entries": [{"name": "a", "size": 2}], "ok": True, "cost": 1, "lines": ["x"], "extra": 1}, Body)
    assert body == Body("j", [Entry("a", 2)], True, 1.0, ("x",), 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "the body must be a JSON object"),
        ({}, "jobId must be a string"),
        ({"jobId": 5}, "jobId must be a string"),
        ({"jobId": "j", "ok": 1}, "ok must be true or false"),
        ({"jobId": "j", "cost": True}, "cost must be a number"),
        ({"jobId": "j", "cost": float("nan")}, "cost must be a number"),
        ({"jobId": "j", "lines": "abc"}, "lines must be a list"),
        ({"jobId": "j", "lines": ["a", 2]}, "lines[1] must be a string"),
        ({"jobId": "j", "entries": [{"name": "a"}, None]}, "entries[1] must be an object with a name"),
        ({"jobId": "j", "entries": [{"name": "a"}, {}]}, "entries[1].name must be a string"),
        ({"jobId": "j", "entries": [{"name": "a", "size": "2"}]}, "entries[0].size must be an integer"),
        ({"jobId": "j", "even": 3}, "even must be an even integer"),
        ({"jobId": 1, "ok": 1}, "jobId must be a string"),  # the first problem only
    ],
)
def test_the_first_problem_is_one_line_with_its_path(data: object, message: str) -> None:
    with pytest.raises(WireError) as refused:
        structure(CONVERTER, data, Body)
    assert str(refused.value) == message


def test_a_parser_reads_fast_and_explains_failures_as_structure_does() -> None:
    parse = parser(CONVERTER, Body, what="a record")
    assert parse({"jobId": "j", "even": 2}).even == 2
    with pytest.raises(WireError) as refused:
        parse({"jobId": "j", "even": 1})
    assert (refused.value.path, refused.value.problem) == ("even", "must be an even integer")
    with pytest.raises(WireError, match="^a record must be a JSON object$"):
        parse("nope")


def test_a_part_read_on_its_own_reports_its_path_in_the_body() -> None:
    parse = parser(CONVERTER, Body, at="data")
    with pytest.raises(WireError, match=r"^data\.entries\[0\]\.name must be a string$"):
        parse({"jobId": "j", "entries": [{}]})
    with pytest.raises(WireError, match="^data must be a JSON object$"):
        parse(None)
    with pytest.raises(WireError, match=r"^data\[1\] must be a string$"):
        structure(CONVERTER, ["a", 1], list[str], at="data")
