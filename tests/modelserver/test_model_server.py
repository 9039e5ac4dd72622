"""The scripted model server on its own (no CLI): protocol, turn matching, tool mapping, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelserver.server import ScenarioServer, load_scenario, scenario_names

KNOWN_TURN_KEYS = {"text", "tool_calls", "error", "drop", "delay_seconds", "usage"}

CLAUDE_TOOLS = [
    {"name": "Bash", "input_schema": {"properties": {"command": {}, "description": {}, "timeout": {}}}},
    {"name": "Write", "input_schema": {"properties": {"file_path": {}, "content": {}}}},
    {"name": "Edit", "input_schema": {"properties": {"file_path": {}, "old_string": {}, "new_string": {}}}},
    {"name": "Read", "input_schema": {"properties": {"file_path": {}, "offset": {}}}},
    {
        "name": "TodoWrite",
        "input_schema": {
            "properties": {"todos": {"items": {"properties": {"content": {}, "status": {}, "activeForm": {}}}}}
        },
    },
]
OPENCODE_TOOLS = [
    {"name": "bash", "input_schema": {"properties": {"command": {}, "description": {}, "workdir": {}}}},
    {"name": "write", "input_schema": {"properties": {"filePath": {}, "content": {}}}},
    {"name": "edit", "input_schema": {"properties": {"filePath": {}, "oldString": {}, "newString": {}}}},
    {"name": "read", "input_schema": {"properties": {"filePath": {}}}},
    {
        "name": "todowrite",
        "input_schema": {"properties": {"todos": {"items": {"properties": {"content": {}, "status": {}, "priority": {}}}}}},
    },
]
SYSTEM = "You are a coding agent.\n - Primary working directory: /work/space\n"


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start servers for a test (any scenario) and stop them afterwards."""
    started: list[ScenarioServer] = []

    def start(scenario: str | dict[str, Any]) -> ScenarioServer:
        server = ScenarioServer(scenario).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def request_body(history: int = 0, tools: list[dict[str, Any]] | None = None, stream: bool = True) -> dict[str, Any]:
    """A Messages API body whose history holds ``history`` assistant answers."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Do the task"}]
    for n in range(history):
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": f"answer {n}"}]},
            {"role": "user", "content": [{"type": "text", "text": f"follow-up {n}"}]},
        ]
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": SYSTEM, "messages": messages}
    body["tools"] = CLAUDE_TOOLS if tools is None else tools
    body["stream"] = stream
    return body


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    """The data objects of an SSE body."""
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def post(server: ScenarioServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/messages", json=body, timeout=10)


def message_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rebuild the content blocks from stream events, as an SDK would."""
    blocks: list[dict[str, Any]] = []
    for event in events:
        if event["type"] == "content_block_start":
            blocks.append(dict(event["content_block"], _json=""))
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                blocks[event["index"]]["text"] += delta["text"]
            else:
                blocks[event["index"]]["_json"] += delta["partial_json"]
    for block in blocks:
        raw = block.pop("_json")
        if block["type"] == "tool_use":
            block["input"] = json.loads(raw)
    return blocks


# ----------------------------------------------------------------------------- protocol


def test_stream_has_the_messages_api_event_sequence(serve: Any) -> None:
    server = serve("hello")
    response = post(server, request_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    events = sse(response)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "ping" in kinds and "content_block_stop" in kinds
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 0 and delta["usage"]["input_tokens"] == 1000
    assert message_of(events) == [{"type": "text", "text": "Hello from the scripted model!"}]


def test_non_streaming_answer_is_one_json_message(serve: Any) -> None:
    server = serve("hello")
    message = post(server, request_body(stream=False)).json()
    assert message["type"] == "message" and message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "Hello from the scripted model!"}]
    assert message["model"] == "claude-sonnet-4-5"


def test_count_tokens_and_models_answer(serve: Any) -> None:
    server = serve("hello")
    counted = httpx.post(f"{server.url}/v1/messages/count_tokens", json=request_body(), timeout=10).json()
    assert counted["input_tokens"] > 0
    assert httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]["id"]
    assert httpx.get(f"{server.url}/api/anything", timeout=10).status_code == 404
    assert "GET /api/anything" in server.paths()


# ----------------------------------------------------------------------------- turns


def test_turn_is_chosen_by_the_assistant_answers_in_the_history(serve: Any) -> None:
    """A resumed session's second message (one answer in its history) plays turn 1."""
    server = serve("session")
    second = message_of(sse(post(server, request_body(history=1))))
    assert second[0]["text"].startswith("Second answer: you said \"follow-up 0\"")
    first = message_of(sse(post(server, request_body(history=0))))
    assert first[0]["text"].startswith("First answer")
    assert [r.turn for r in server.main_requests()] == [1, 0]


def test_side_requests_without_tools_do_not_use_turns(serve: Any) -> None:
    server = serve("hello")
    side = message_of(sse(post(server, request_body(tools=[]))))
    assert side == [{"type": "text", "text": "Scripted side answer"}]
    assert message_of(sse(post(server, request_body())))[0]["text"] == "Hello from the scripted model!"
    assert [r.kind for r in server.requests] == ["side", "main"]


def test_past_the_last_turn_the_answer_says_so(serve: Any) -> None:
    server = serve("hello")
    assert "no more turns" in message_of(sse(post(server, request_body(history=3))))[0]["text"]


def test_requests_are_recorded_in_python_and_over_http(serve: Any) -> None:
    server = serve("hello")
    post(server, request_body())
    assert any("Do the task" in text for text in server.requests[0].texts())
    remote = httpx.get(f"{server.url}/_requests", timeout=10).json()
    assert remote[0]["path"] == "/v1/messages" and remote[0]["body"]["messages"][0]["content"] == "Do the task"
    assert remote[0]["headers"]["content-type"] == "application/json"


# ----------------------------------------------------------------------------- tools


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (
            CLAUDE_TOOLS,
            [
                ("Bash", {"command": "echo hi > notes.txt", "description": "Write hi into notes.txt"}),
                ("Write", {"file_path": "/work/space/hello.py", "content": "print('hello')\n"}),
                ("Edit", {"file_path": "/work/space/hello.py", "old_string": "hello", "new_string": "hello, world"}),
                ("Read", {"file_path": "/work/space/hello.py"}),
            ],
        ),
        (
            OPENCODE_TOOLS,
            [
                ("bash", {"command": "echo hi > notes.txt", "description": "Write hi into notes.txt"}),
                ("write", {"filePath": "/work/space/hello.py", "content": "print('hello')\n"}),
                ("edit", {"filePath": "/work/space/hello.py", "oldString": "hello", "newString": "hello, world"}),
                ("read", {"filePath": "/work/space/hello.py"}),
            ],
        ),
    ],
    ids=["claude", "opencode"],
)
def test_generic_tool_calls_map_to_the_offered_dialect(
    serve: Any, tools: list[dict[str, Any]], expected: list[tuple[str, dict[str, Any]]]
) -> None:
    server = serve("tools")
    calls = []
    for turn in range(4):
        events = sse(post(server, request_body(history=turn, tools=tools)))
        assert next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"
        calls += [(b["name"], b["input"]) for b in message_of(events) if b["type"] == "tool_use"]
    assert calls == expected


@pytest.mark.parametrize(
    ("tools", "name", "extra"),
    [(CLAUDE_TOOLS, "TodoWrite", "activeForm"), (OPENCODE_TOOLS, "todowrite", "priority")],
    ids=["claude", "opencode"],
)
def test_todos_get_the_fields_each_schema_wants(serve: Any, tools: list[dict[str, Any]], name: str, extra: str) -> None:
    server = serve("todo")
    block = message_of(sse(post(server, request_body(tools=tools))))[0]
    assert block["name"] == name
    assert [t["status"] for t in block["input"]["todos"]] == ["completed", "in_progress", "pending"]
    assert all(extra in t for t in block["input"]["todos"])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("scenario", "status", "kind"), [("auth_error", 401, "authentication_error"), ("overloaded", 529, "overloaded_error")])
def test_permanent_errors_repeat(serve: Any, scenario: str, status: int, kind: str) -> None:
    server = serve(scenario)
    for _ in range(3):
        response = post(server, request_body())
        assert response.status_code == status
        assert response.json()["error"]["type"] == kind and response.json()["type"] == "error"
    assert [r.response_status for r in server.main_requests()] == [status] * 3


def test_rate_limit_once_then_the_answer(serve: Any) -> None:
    server = serve("rate_limited")
    limited = post(server, request_body())
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert message_of(sse(post(server, request_body())))[0]["text"] == "Answered after a rate limit."


def test_dropped_stream_is_a_protocol_error(serve: Any) -> None:
    server = serve("dropped")
    with pytest.raises(httpx.HTTPError):
        post(server, request_body())
    with pytest.raises(httpx.HTTPError):
        post(server, request_body(stream=False))


def test_dropped_only_as_often_as_scripted(serve: Any) -> None:
    scenario = load_scenario("dropped")
    scenario["turns"][0]["drop"]["times"] = 1
    server = serve(scenario)
    with pytest.raises(httpx.HTTPError):
        post(server, request_body())
    assert message_of(sse(post(server, request_body())))[0]["text"].startswith("This answer is long")


def test_slow_turn_waits_its_delay(serve: Any) -> None:
    scenario = load_scenario("slow")
    scenario["turns"][0]["delay_seconds"] = 0.5
    server = serve(scenario)
    started = time.monotonic()
    assert message_of(sse(post(server, request_body())))[0]["text"] == "Finally, the slow answer."
    assert time.monotonic() - started >= 0.5


def test_stopping_wakes_a_slow_turn(serve: Any) -> None:
    server = serve("slow")
    started = time.monotonic()
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"{server.url}/v1/messages", json=request_body(), timeout=0.3)
    server.stop()
    assert time.monotonic() - started < 5


# ----------------------------------------------------------------------------- scenarios and CLI


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_scenarios_are_well_formed(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario["description"] and scenario["turns"]
    for turn in scenario["turns"]:
        assert set(turn) <= KNOWN_TURN_KEYS, f"{name}: unknown keys {set(turn) - KNOWN_TURN_KEYS}"


def test_required_scenarios_ship() -> None:
    required = {"hello", "tools", "todo", "auth_error", "rate_limited", "overloaded", "dropped", "slow", "session"}
    assert required <= set(scenario_names())


def test_standalone_server_prints_its_url_and_serves() -> None:
    script = Path(__file__).with_name("server.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--scenario", "hello", "--port", "0", "--quiet"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        answer = httpx.post(f"{url}/v1/messages", json=request_body(stream=False), timeout=10).json()
        assert answer["content"][0]["text"] == "Hello from the scripted model!"
    finally:
        process.terminate()
        process.wait(timeout=10)
