"""Reading the Machines API's JSON (fly/wire.py): what we use, strictly, with readable errors."""

from __future__ import annotations

import pytest

from opendispatch.adapters.fly.wire import MachineView, exit_code_of
from opendispatch.domain.errors import SpriteError


def test_a_machine_is_read_with_its_metadata_and_exit_code() -> None:
    body = {
        "id": "m1",
        "name": "od-j-1",
        "state": "stopped",
        "instance_id": None,
        "config": {"metadata": {"od_job": "j-1"}, "image": "x"},
        "events": [{"type": "exit", "request": {"MonitorEvent": {"exit_event": {}}, "exit_event": {"exit_code": 2.0}}}],
    }
    assert MachineView.from_json(body) == MachineView("m1", "od-j-1", "stopped", "", {"od_job": "j-1"}, 2)
    assert MachineView.from_json({"id": "m2", "config": None}) == MachineView("m2", "", "", "", {}, None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "the machine must be a JSON object"),
        ({"name": "x"}, "id must be a string"),
        ({"id": "m", "config": {"metadata": {"od_job": 5}}}, "config.metadata must be an object of strings"),
        ({"id": "m", "events": [{"request": {"exit_event": {"exit_code": "1"}}}]}, "events[0].request.exit_event.exit_code must be an integer"),
    ],
)
def test_a_machine_we_cannot_read_is_a_sprite_error_naming_the_field(body: object, problem: str) -> None:
    with pytest.raises(SpriteError) as refused:
        MachineView.from_json(body)
    assert str(refused.value) == f"the Fly Machines API answered a machine we cannot read: {problem}"


def test_events_that_are_not_a_list_are_refused() -> None:
    with pytest.raises(SpriteError, match="the events must be a list"):
        exit_code_of({"type": "exit"})
