"""A scripted Anthropic Messages API server that the real Claude Code and OpenCode CLIs run against.

Why: tests of the agent runners need the *real* CLIs (their event streams, session files,
retries and exit codes are what we translate), but no network and no model. This server
plays a scenario script (``scenarios/<name>.json``): each request of the main conversation
gets the next scripted answer (text, tool calls, or an HTTP error), side requests (titles,
quota checks) get a short text, and every request is recorded so tests can assert on what
the CLI sent. Python stdlib only, so it also runs standalone::

    python tests/modelserver/server.py --scenario tools --port 0

See README.md next to this file for the script format and the CLI settings.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_MODEL = "claude-sonnet-4-5"
EXHAUSTED_TEXT = "(the scripted scenario has no more turns)"
SIDE_TEXT = "Scripted side answer"

# Generic tool kinds of the script -> tool names the CLIs offer (matched case-insensitively).
TOOL_NAMES: dict[str, tuple[str, ...]] = {
    "shell": ("Bash", "bash"),
    "write": ("Write", "write"),
    "edit": ("Edit", "edit"),
    "read": ("Read", "read"),
    "todo": ("TodoWrite", "todowrite"),
}
PATH_KEYS = ("file_path", "filePath", "path")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    401: "invalid x-api-key",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    529: "Overloaded",
}


# ----------------------------------------------------------------------------- scenarios


def load_scenario(name_or_path: str | Path) -> dict[str, Any]:
    """A scenario by name (``scenarios/<name>.json``) or path, as a dict tests may modify."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.json"
    scenario: dict[str, Any] = json.loads(path.read_text())
    scenario.setdefault("name", path.stem)
    return scenario


def scenario_names() -> list[str]:
    """Every shipped scenario, for tests that loop over them."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


# ----------------------------------------------------------------------------- recording


@dataclass
class RecordedRequest:
    """One request as the CLI sent it; ``kind`` is main, side, count_tokens or other."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    kind: str
    turn: int | None = None
    response_status: int = 200
    at: float = field(default_factory=time.time)

    def texts(self) -> list[str]:
        """Every text in the request's messages and system prompt, to grep for earlier turns."""
        found: list[str] = []
        body = self.body if isinstance(self.body, dict) else {}
        _collect_texts(body.get("system"), found)
        for message in body.get("messages", []):
            _collect_texts(message.get("content"), found)
        return found


def _collect_texts(content: Any, out: list[str]) -> None:
    """Texts from a string or a list of content blocks, nested tool results included."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    out.append(block["text"])
                _collect_texts(block.get("content"), out)


# ----------------------------------------------------------------------------- request analysis


def is_side_request(body: dict[str, Any]) -> bool:
    """Title generation, quota checks and the like: requests that offer no tools.

    Both CLIs offer their tools on every request of the main conversation, and none on
    their side requests, so this tells them apart without knowing each CLI's prompts.
    """
    return not body.get("tools")


def assistant_turns(body: dict[str, Any]) -> int:
    """How many answers the conversation already holds: the index of the turn to play.

    Counting the request's own history (not a server-side counter) makes a resumed
    session, a retry after an error and a second CLI process all pick the right turn.
    """
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def last_user_text(body: dict[str, Any]) -> str:
    """The last user text that is not a CLI-injected reminder, for ``{{user_text}}``."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") != "user":
            continue
        texts: list[str] = []
        _collect_texts(message.get("content"), texts)
        real = [t for t in texts if t.strip() and not t.lstrip().startswith("<")]
        if real:
            return real[-1].strip()
    return ""


def working_directory(body: dict[str, Any]) -> str | None:
    """The CLI's cwd, which both put into the system prompt ("Working directory: ...")."""
    texts: list[str] = []
    _collect_texts(body.get("system"), texts)
    for message in body.get("messages", [])[:2]:
        _collect_texts(message.get("content"), texts)
    for text in texts:
        match = re.search(r"working directory:\s*(\S+)", text, re.IGNORECASE)
        if match:
            return match.group(1)
    return None


def offered_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's tools by lower-cased name."""
    return {t.get("name", "").lower(): t for t in body.get("tools", []) if isinstance(t, dict)}


# ----------------------------------------------------------------------------- tool mapping


def map_tool_call(call: dict[str, Any], body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A generic scripted call -> (tool name, input) in the dialect the CLI offered.

    The script says ``{"tool": "write", "path": "a.py", "content": "..."}``; Claude Code
    wants ``Write{file_path (absolute), content}``, OpenCode ``write{filePath, content}``.
    The schema in the request decides which keys to use, so both CLIs share one script.
    """
    kind = call["tool"]
    name, schema = _pick_tool(kind, call, offered_tools(body))
    if kind not in TOOL_NAMES:  # any other tool: the script gives its literal input
        return name, dict(call.get("input", {}))
    props: dict[str, Any] = schema.get("input_schema", {}).get("properties", {})
    if kind == "shell":
        args: dict[str, Any] = {"command": call["command"]}
        if "description" in props:
            args["description"] = call.get("description", "Run a scripted command")
    elif kind == "todo":
        args = {"todos": _todos(call.get("todos", []), props)}
    else:
        args = _FILE_BUILDERS[kind](call, props, body)
    args.update(call.get("extra_input", {}))
    return name, args


def _pick_tool(kind: str, call: dict[str, Any], tools: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The offered tool for a generic kind; an unknown kind is used as a literal tool name."""
    for candidate in TOOL_NAMES.get(kind, (kind,)):
        tool = tools.get(candidate.lower())
        if tool is not None:
            return tool["name"], tool
    # Not offered: send the first spelling anyway; the CLI will report an unknown tool.
    return call.get("name", TOOL_NAMES.get(kind, (kind,))[0]), {}


def _abs_path(path: str, body: dict[str, Any]) -> str:
    """Claude Code's file tools demand absolute paths; resolve against the CLI's cwd."""
    if path.startswith("/"):
        return path
    cwd = working_directory(body)
    return f"{cwd.rstrip('/')}/{path}" if cwd else path


def _path_key(props: dict[str, Any]) -> str:
    return next((k for k in PATH_KEYS if k in props), "file_path")


def _write_args(call: dict[str, Any], props: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {_path_key(props): _abs_path(call["path"], body), "content": call.get("content", "")}


def _edit_args(call: dict[str, Any], props: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    old_key, new_key = ("oldString", "newString") if "oldString" in props else ("old_string", "new_string")
    return {_path_key(props): _abs_path(call["path"], body), old_key: call["old"], new_key: call["new"]}


def _read_args(call: dict[str, Any], props: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {_path_key(props): _abs_path(call["path"], body)}


_FILE_BUILDERS = {"write": _write_args, "edit": _edit_args, "read": _read_args}


def _todos(todos: list[dict[str, Any]], props: dict[str, Any]) -> list[dict[str, Any]]:
    """Fill the fields each CLI's todo schema requires (activeForm, priority, id)."""
    item_props: dict[str, Any] = props.get("todos", {}).get("items", {}).get("properties", {})
    out = []
    for i, todo in enumerate(todos, start=1):
        item = {"content": todo["content"], "status": todo.get("status", "pending")}
        if "activeForm" in item_props:
            item["activeForm"] = todo.get("activeForm", todo["content"])
        if "priority" in item_props:
            item["priority"] = todo.get("priority", "medium")
        if "id" in item_props:
            item["id"] = str(todo.get("id", i))
        out.append(item)
    return out


# ----------------------------------------------------------------------------- answers


_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_scripted{next(_ids):06d}"


def build_content(turn: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant content blocks of a turn: optional text first, then tool calls."""
    blocks: list[dict[str, Any]] = []
    text = turn.get("text")
    if text:
        blocks.append({"type": "text", "text": text.replace("{{user_text}}", last_user_text(body))})
    for call in turn.get("tool_calls", []):
        name, args = map_tool_call(call, body)
        blocks.append({"type": "tool_use", "id": _new_id("toolu"), "name": name, "input": args})
    if not blocks:
        blocks.append({"type": "text", "text": EXHAUSTED_TEXT})
    return blocks


def usage_for(turn: dict[str, Any], blocks: list[dict[str, Any]]) -> dict[str, int]:
    """Fixed, predictable token counts (override with the turn's ``usage``) so costs are testable."""
    output = sum(len(b.get("text", "")) // 4 + 1 for b in blocks if b["type"] == "text")
    output += 25 * sum(1 for b in blocks if b["type"] == "tool_use")
    usage = {
        "input_tokens": 1000,
        "output_tokens": max(output, 1),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    usage.update(turn.get("usage", {}))
    return usage


def message_json(model: str, blocks: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
    """The non-streaming Messages API answer."""
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def sse_events(message: dict[str, Any], chunk: int = 12) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of a message, text and tool input split into several deltas."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block, chunk))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {
                    "input_tokens": usage["input_tokens"],
                    "output_tokens": usage["output_tokens"],
                    "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
                    "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                },
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: dict[str, Any], chunk: int) -> list[tuple[str, dict[str, Any]]]:
    if block["type"] == "text":
        start_block: dict[str, Any] = {"type": "text", "text": ""}
        payload, delta_type, key = block["text"], "text_delta", "text"
    else:
        start_block = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        payload, delta_type, key = json.dumps(block["input"]), "input_json_delta", "partial_json"
    events: list[tuple[str, dict[str, Any]]] = [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start_block})
    ]
    for i in range(0, max(len(payload), 1), chunk):
        delta = {"type": delta_type, key: payload[i : i + chunk]}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """An Anthropic-style error body, as the SDKs parse it."""
    kind = ERROR_TYPES.get(status, "api_error")
    text = message or ERROR_MESSAGES.get(status, kind)
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": _new_id("req")}


# ----------------------------------------------------------------------------- server


class ScenarioServer:
    """The scripted server, in a background thread; use as a context manager.

    ``server.url`` is what ``ANTHROPIC_BASE_URL`` (Claude Code) or the provider's
    ``baseURL`` (OpenCode, with ``/v1`` appended) points at; ``server.requests`` holds
    every request received.
    """

    def __init__(self, scenario: str | Path | dict[str, Any] = "hello", port: int = 0, log: bool = False) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._attempts: dict[int, int] = {}
        self.log = log
        self.scenario: dict[str, Any] = {}
        self.load(scenario)
        self._httpd = _QuietServer(("127.0.0.1", port), _make_handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="model-server", daemon=True)

    # -- lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScenarioServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; slow turns waiting on their delay are woken and give up."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScenarioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scenario and records

    def load(self, scenario: str | Path | dict[str, Any]) -> None:
        """Play another scenario from now on (the request log is kept)."""
        loaded = copy.deepcopy(scenario) if isinstance(scenario, dict) else load_scenario(scenario)
        with self._lock:
            self.scenario = loaded
            self._attempts = {}

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def main_requests(self) -> list[RecordedRequest]:
        """Only the requests of the main conversation (those that played a turn)."""
        return [r for r in self.requests if r.kind == "main"]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
        if self.log:
            print(f"[model-server] {request.method} {request.path} kind={request.kind} turn={request.turn}", file=sys.stderr)

    def next_attempt(self, turn: int) -> int:
        """How many times this turn was asked for before (retries count), then counts this one."""
        with self._lock:
            seen = self._attempts.get(turn, 0)
            self._attempts[turn] = seen + 1
            return seen

    def turn(self, index: int) -> dict[str, Any] | None:
        turns: list[dict[str, Any]] = self.scenario.get("turns", [])
        return turns[index] if index < len(turns) else None

    def wait(self, seconds: float) -> bool:
        """Sleep for a slow turn; False if the server is stopping."""
        return not self._stopping.wait(seconds)


class _QuietServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that does not print tracebacks when a CLI hangs up.

    CLIs cancel, time out and retry by closing connections; that is expected traffic.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _make_handler(server: ScenarioServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        scripted = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; the scenario logic lives in ScenarioServer and the functions above."""

    protocol_version = "HTTP/1.1"
    scripted: ScenarioServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log; ScenarioServer.log prints a shorter one."""

    # -- plumbing

    def _read_body(self) -> tuple[Any, bytes]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return (json.loads(raw) if raw else None), raw
        except ValueError:
            return raw.decode("utf-8", "replace"), raw

    def _record(self, body: Any, kind: str, turn: int | None = None, status: int = 200) -> None:
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.scripted.record(RecordedRequest(self.command, path, headers, body, kind, turn, status))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _new_id("req"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    # -- routes

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/_requests":
            self._send_json(200, [asdict(r) for r in self.scripted.requests])
            return
        self._record(None, "other")
        if path.rstrip("/").endswith("/v1/models"):
            model = self.scripted.scenario.get("model", DEFAULT_MODEL)
            entry = {"type": "model", "id": model, "display_name": model, "created_at": "2025-09-29T00:00:00Z"}
            self._send_json(200, {"data": [entry], "has_more": False, "first_id": model, "last_id": model})
            return
        self._send_json(404, error_body(404, f"scripted server: no route {path}"))

    def do_HEAD(self) -> None:  # noqa: N802
        self._record(None, "other")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        body, _raw = self._read_body()
        if path.endswith("/v1/messages/count_tokens"):
            self._record(body, "count_tokens")
            self._send_json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
        elif path.endswith("/v1/messages") and isinstance(body, dict):
            self._messages(body)
        else:
            self._record(body, "other", status=404)
            self._send_json(404, error_body(404, f"scripted server: no route {path}"))

    # -- the Messages API

    def _messages(self, body: dict[str, Any]) -> None:
        model = body.get("model") or self.scripted.scenario.get("model", DEFAULT_MODEL)
        if is_side_request(body):
            self._record(body, "side")
            self._answer(body, model, {"text": self.scripted.scenario.get("side_text", SIDE_TEXT)})
            return
        index = assistant_turns(body)
        turn = self.scripted.turn(index) or {"text": EXHAUSTED_TEXT}
        attempt = self.scripted.next_attempt(index)
        error = turn.get("error")
        if error and (error.get("times") is None or attempt < error["times"]):
            self._record(body, "main", index, status=int(error["status"]))
            self._error(error)
            return
        self._record(body, "main", index)
        delay = float(turn.get("delay_seconds", 0))
        if delay and not self.scripted.wait(delay):
            return
        drop: dict[str, Any] = turn.get("drop") or {}
        dropping = bool(drop) and (drop.get("times") is None or attempt < drop["times"])
        self._answer(body, model, turn, drop_after=int(drop.get("after_events", 4)) if dropping else None)

    def _error(self, error: dict[str, Any]) -> None:
        status = int(error["status"])
        headers = {}
        if "retry_after" in error:
            headers["retry-after"] = str(error["retry_after"])
        if "retry_after_ms" in error:  # both CLIs honour it: the way to make their retries fast
            headers["retry-after-ms"] = str(error["retry_after_ms"])
        if status == 529:
            headers["x-should-retry"] = "true"
        self._send_json(status, error_body(status, error.get("message")), headers)

    def _answer(self, body: dict[str, Any], model: str, turn: dict[str, Any], drop_after: int | None = None) -> None:
        blocks = build_content(turn, body)
        message = message_json(model, blocks, usage_for(turn, blocks))
        if not body.get("stream"):
            if drop_after is not None:
                self._drop_json(message)
                return
            self._send_json(200, message)
            return
        self._stream(sse_events(message), drop_after)

    def _drop_json(self, payload: dict[str, Any]) -> None:
        """A non-streaming answer cut after half its body (Claude Code falls back to these)."""
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self._drop()

    def _stream(self, events: list[tuple[str, dict[str, Any]]], drop_after: int | None) -> None:
        """SSE with chunked encoding, so a dropped stream is a visible protocol error.

        A connection closed after a complete chunked body is a clean end; one closed
        before the terminating zero-length chunk is what a real network drop looks like.
        """
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", _new_id("req"))
        self.end_headers()
        pause = float(self.scripted.scenario.get("event_pause_seconds", 0.0))
        for n, (name, data) in enumerate(events):
            if drop_after is not None and n >= drop_after:
                self._drop()
                return
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            if pause:
                time.sleep(pause)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Cut the connection mid-stream (no final chunk), as a network failure would."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ----------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    """Run standalone: print the URL, log each request to stderr, serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="hello", help="name in scenarios/ or a path to a .json file")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    server = ScenarioServer(args.scenario, port=args.port, log=not args.quiet).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
