"""support.wire: strict cattrs converters and one readable line for the first problem."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest

from opendispatch.support.wire import Invalid, WireError, hook_for, hooked, make_converter, make_lenient_converter, parser, structure, wire_key


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


@attrs.define
class Account:
    id: str
    name: str = ""


@attrs.define
class Note:
    text: str = ""
    from_property: Account | None = attrs.field(default=None, metadata=wire_key("from"))
    to: list[Account] = attrs.Factory(list)
    seen: bool | None = None
    size: int = attrs.field(default=1, metadata=hooked(lambda value, _: _even(value)))


def test_a_key_that_cannot_be_an_attribute_is_read_and_named_in_errors() -> None:
    assert structure(CONVERTER, {"from": {"id": "a"}}, Note).from_property == Account("a")
    with pytest.raises(WireError, match=r"^from\.id must be a string$"):
        structure(CONVERTER, {"from": {"id": 1}}, Note)


@pytest.mark.parametrize("detailed", [True, False])
def test_a_lenient_converter_gives_defaults_for_what_does_not_fit(detailed: bool) -> None:
    lenient = make_lenient_converter(detailed_validation=detailed)
    read = hook_for(lenient, Note)
    odd = {"text": 5, "from": [], "to": [{"id": "a"}, None, {"id": 2}, {"id": "b", "name": 3}], "seen": "yes", "size": 3}
    assert read(odd, Note) == Note("", None, [Account("a"), Account("b")], None, 1)
    assert read({"from": {"name": "x"}, "to": "all"}, Note) == Note()  # from.id has no default: from does not fit
    assert structure(lenient, {"text": "hi", "from": {"id": "a"}, "size": 4}, Note) == Note("hi", Account("a"), [], None, 4)
    with pytest.raises(WireError, match="^the body must be a JSON object$"):
        structure(lenient, "nope", Note)
