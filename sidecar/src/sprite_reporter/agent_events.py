"""Translate a coding agent's machine-readable output into our event vocabulary (wire version 1).

docs/agents.md defines the vocabulary: `init`, `text`, `tool_start`, `tool_end`, `plan`, `usage`,
`files_changed` (not made here) and `result`, camelCase fields, every event with `"v": 1`.

- `ClaudeTranslator` reads Claude Code's `--output-format stream-json --verbose` lines.
- `OpenCodeTranslator` reads OpenCode's `run --format json` lines.

Each offers `feed(line) -> List[dict]` (one stdout line in, zero or more events out) and
`finish(exit_code, stderr_tail) -> List[dict]` (the CLI exited: the run's `result` when the CLI
never gave one). A line that is not JSON, or JSON this module does not know, yields no event and
never raises: new CLI versions add events, and the caller keeps every raw line in the transcript.

Pure and standard library only (python3 >= 3.9); it imports nothing else from the sidecar.

What the real CLIs print (tests/fixtures/agent_streams) and how it is read:
- Claude Code repeats an API message's usage on each of its content lines, and that usage is the
  stream's start (output_tokens 1): running totals count each message id once and are rough;
  the result's `modelUsage` (all models, sub-agents included) gives the final totals.
- A refused API call ends in a made-up assistant message (`error`, `is_api_error_message`,
  `api_error_status`) and a result with `subtype: success`, `is_error: true` and
  `api_error_status` / `api_error_type`: the kind comes from those before the text.
- Claude Code 2.1.x in print mode refuses TodoWrite and offers TaskCreate/TaskUpdate: a `plan`
  is published when such a call succeeded, never from a refused one.
- OpenCode reports a tool once it finished; a bash that exited non-zero is `completed` with
  `metadata.exit`, shown as not ok. It has no result line: `finish` builds one.
"""

import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

WIRE_VERSION = 1
SUMMARY_MAX = 120
EXCERPT_MAX = 300
EXCERPT_LINES = 8
ANSWER_MAX = 20000
ERROR_MAX = 500

# CSI (colours, cursor moves), OSC (titles, links; ended by BEL or ST) and two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TOOL_ERROR_TAG = re.compile(r"</?tool_use_error>")

_PLAN_STATUSES = ("pending", "in_progress", "completed")


# ---------------------------------------------------------------------------------------------
# Small helpers, defensive about types: the CLIs' JSON is input we do not control.


def _event(type_: str, **fields: Any) -> Dict[str, Any]:
    """An event: `v`, `type`, then the fields that have a value (a missing field means unknown)."""
    event = {"v": WIRE_VERSION, "type": type_}  # type: Dict[str, Any]
    for key, value in fields.items():
        if value is not None:
            event[key] = value
    return event


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    """A token count: ints and integral floats count, anything else (bool, str, None) is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return max(int(value), 0)
    return 0


def _cost(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        return None
    return number


def _parse(line: Any) -> Optional[Dict[str, Any]]:
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    if not isinstance(line, str):
        return None
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _one_line(text: str, limit: int = SUMMARY_MAX) -> str:
    """The first non-blank line, ANSI and control characters removed, at most `limit` characters."""
    text = strip_ansi(text)
    for line in text.splitlines():
        line = _CONTROL.sub("", line).strip()
        if line:
            return _clip(line, limit)
    return ""


def excerpt(text: Any, limit: int = EXCERPT_MAX, max_lines: int = EXCERPT_LINES) -> str:
    """The first lines of a tool's output: ANSI stripped, at most `max_lines` lines, `limit` chars."""
    if not isinstance(text, str):
        return ""
    lines = []  # type: List[str]
    for raw in strip_ansi(text).replace("\r\n", "\n").split("\n"):
        # A carriage return redraws the line (progress bars): what stays visible is its last part.
        line = _CONTROL.sub("", raw.split("\r")[-1]).rstrip()
        if lines or line.strip():
            lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    out = "\n".join(lines[:max_lines])
    if len(out) > limit:
        return _clip(out, limit)
    if len(lines) > max_lines:
        return _clip(out + "\n\u2026", limit)
    return out


def _relative(path: str, workspace: Optional[str]) -> str:
    if not workspace or not os.path.isabs(path):
        return path
    try:
        rel = os.path.relpath(path, workspace)
    except ValueError:
        return path
    if rel == os.curdir:
        return "."
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return path
    return rel


_PATH_TOOLS = ("read", "write", "edit", "multiedit", "notebookedit", "notebookread", "ls", "list")
_PATH_KEYS = ("file_path", "filePath", "notebook_path", "notebookPath", "path")
_PATTERN_TOOLS = ("grep", "glob")


def tool_summary(tool: Any, tool_input: Any, workspace: Optional[str] = None) -> str:
    """One line saying what a tool call does: the command, the path, the pattern, ..."""
    name = (_str(tool) or "").lower()
    args = _dict(tool_input)

    def first(*keys: str) -> Optional[str]:
        for key in keys:
            value = _str(args.get(key))
            if value and value.strip():
                return value
        return None

    if name == "bash":
        command = first("command", "cmd")
        if command is not None:
            return _one_line(command)
    elif name in _PATH_TOOLS:
        path = first(*_PATH_KEYS)
        if path is not None:
            return _one_line(_relative(path.strip(), workspace))
    elif name in _PATTERN_TOOLS:
        pattern = first("pattern", "query")
        if pattern is not None:
            return _one_line(pattern)
    elif name == "webfetch":
        url = first("url")
        if url is not None:
            return _one_line(url)
    elif name == "websearch":
        query = first("query")
        if query is not None:
            return _one_line(query)
    elif name == "task":
        description = first("description", "prompt")
        if description is not None:
            return _one_line(description)
    elif name == "todowrite":
        todos = args.get("todos")
        if isinstance(todos, list):
            return "%d item%s" % (len(todos), "" if len(todos) == 1 else "s")
    for key, value in args.items():
        if isinstance(value, str) and value.strip():
            if key in _PATH_KEYS:
                value = _relative(value.strip(), workspace)
            return _one_line("%s=%s" % (key, value))
    return ""


def plan_items(todos: Any) -> List[Dict[str, str]]:
    """A todo list (`[{content, status, ...}]`) as `plan` items; odd entries are skipped."""
    items = []  # type: List[Dict[str, str]]
    for todo in _list(todos):
        todo = _dict(todo)
        text = _str(todo.get("content")) or _str(todo.get("activeForm")) or _str(todo.get("text"))
        if not text:
            continue
        status = _str(todo.get("status")) or "pending"
        if status == "cancelled":
            status = "completed"  # OpenCode: a dropped item is no longer to do
        elif status not in _PLAN_STATUSES:
            status = "pending"
        items.append({"text": _clip(text.strip(), 500), "status": status})
    return items


_AUTH = re.compile(
    r"invalid api key|invalid x-api-key|authentication[_ ]error|authentication[_ ]failed|"
    r"unauthori[sz]ed|\b401\b|please run /login|oauth token has expired|invalid bearer token|"
    r"api key (?:is )?(?:missing|not set|required)|no api key|providerautherror|"
    r"credit balance is too low",
    re.IGNORECASE,
)
_RATE = re.compile(r"\b429\b|rate[ _-]?limit|too many requests", re.IGNORECASE)
_OVERLOADED = re.compile(r"\b529\b|overloaded", re.IGNORECASE)


def classify_error(text: Any) -> Optional[str]:
    """`auth`, `rate_limit` or `overloaded` when an error's text says so, else None."""
    if not isinstance(text, str) or not text:
        return None
    if _AUTH.search(text):
        return "auth"
    if _RATE.search(text):
        return "rate_limit"
    if _OVERLOADED.search(text):
        return "overloaded"
    return None


def _stderr_error(exit_code: Any, stderr_tail: Any) -> Tuple[str, str]:
    """(errorKind, error) for a CLI that ended without a result of its own."""
    lines = [strip_ansi(line).strip() for line in _list(stderr_tail) if isinstance(line, str)]
    lines = [line for line in lines if line]
    text = "\n".join(lines[-5:])
    kind = classify_error("\n".join(lines)) or "crash"
    code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
    if code is None:
        what = "the agent ended without a result"
    elif code < 0:
        what = "the agent was killed by signal %d" % -code
    elif code == 127:
        what = "the agent's command was not found (exit code 127)"
    elif code > 128 and code - 128 in (2, 9, 15):
        what = "the agent was killed by signal %d (exit code %d)" % (code - 128, code)
    else:
        what = "the agent exited with code %d without a result" % code
    return kind, _clip(what + (": " + text if text else ""), ERROR_MAX)


class _Usage(object):
    """Running totals, per API message so that a message reported twice counts once."""

    def __init__(self) -> None:
        self._per_key = {}  # type: Dict[str, Tuple[int, int]]
        self._anonymous = 0
        self.cost_usd = None  # type: Optional[float]
        self.override = None  # type: Optional[Tuple[int, int]]

    def put(self, key: Optional[str], input_tokens: int, output_tokens: int) -> None:
        if key is None:
            self._anonymous += 1
            key = "\x00%d" % self._anonymous
        self._per_key[key] = (input_tokens, output_tokens)

    def add_cost(self, cost: Optional[float]) -> None:
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost

    def totals(self) -> Tuple[int, int]:
        if self.override is not None:
            return self.override
        return (sum(i for i, _ in self._per_key.values()), sum(o for _, o in self._per_key.values()))

    def as_dict(self) -> Dict[str, Any]:
        input_tokens, output_tokens = self.totals()
        out = {"inputTokens": input_tokens, "outputTokens": output_tokens}  # type: Dict[str, Any]
        if self.cost_usd is not None:
            out["costUsd"] = round(self.cost_usd, 6)
        return out

    def event(self, final: bool) -> Dict[str, Any]:
        return _event("usage", final=final, **self.as_dict())


class _Translator(object):
    agent = ""

    def __init__(self, workspace: Optional[str] = None, model: Optional[str] = None) -> None:
        self.workspace = workspace
        self._model = model
        self._session_id = None  # type: Optional[str]
        self._result = None  # type: Optional[Dict[str, Any]]
        self._usage = _Usage()
        self._usage_sent = None  # type: Optional[Dict[str, Any]]

    @property
    def session_id(self) -> Optional[str]:
        return self._session_id

    @property
    def model(self) -> Optional[str]:
        return self._model

    @property
    def result(self) -> Optional[Dict[str, Any]]:
        return self._result

    @property
    def usage(self) -> Dict[str, Any]:
        """Running totals so far: `inputTokens`, `outputTokens` and `costUsd` when known."""
        return self._usage.as_dict()

    def feed(self, line: str) -> List[Dict[str, Any]]:
        """One line of the CLI's stdout in, zero or more events out; never raises."""
        data = _parse(line)
        if data is None:
            return []
        try:
            return self._translate(data)
        except Exception:  # noqa: BLE001 - odd input must never break a job
            return []

    def finish(self, exit_code: int, stderr_tail: List[str]) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def _translate(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def _usage_event(self, final: bool) -> List[Dict[str, Any]]:
        """A `usage` event when the totals changed since the last one (or it is the final one)."""
        current = self._usage.as_dict()
        if not final and current == self._usage_sent:
            return []
        self._usage_sent = current
        return [self._usage.event(final)]

    def _crash_result(self, exit_code: int, stderr_tail: List[str]) -> Dict[str, Any]:
        kind, error = _stderr_error(exit_code, stderr_tail)
        return self._result_event(ok=False, answer=None, turns=None, kind=kind, error=error)

    def _result_event(
        self,
        ok: bool,
        answer: Optional[str],
        turns: Optional[int],
        kind: Optional[str],
        error: Optional[str],
    ) -> Dict[str, Any]:
        usage = self._usage.as_dict()
        return _event(
            "result",
            ok=ok,
            answer=_clip(answer, ANSWER_MAX) if answer else None,
            costUsd=usage.get("costUsd"),
            inputTokens=usage["inputTokens"],
            outputTokens=usage["outputTokens"],
            turns=turns,
            model=self._model,
            sessionId=self._session_id,
            errorKind=None if ok else (kind or "agent_error"),
            error=None if ok else (_clip(error, ERROR_MAX) if error else None),
        )


# ---------------------------------------------------------------------------------------------
# Claude Code: --output-format stream-json --verbose


def _claude_result_text(content: Any) -> str:
    """A tool_result's content: a string, or a list of blocks of which the text ones count."""
    if isinstance(content, str):
        return content
    parts = []  # type: List[str]
    for block in _list(content):
        block = _dict(block)
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "image":
            parts.append("[image]")
    return "\n".join(parts)


def _claude_tokens(usage: Any) -> Tuple[int, int]:
    usage = _dict(usage)
    input_tokens = (
        _int(usage.get("input_tokens"))
        + _int(usage.get("cache_creation_input_tokens"))
        + _int(usage.get("cache_read_input_tokens"))
    )
    return input_tokens, _int(usage.get("output_tokens"))


def _claude_model_usage(model_usage: Any) -> Optional[Tuple[int, int]]:
    """The totals of the result's `modelUsage` (per model, sub-agents included), if it has any."""
    models = _dict(model_usage)
    if not models:
        return None
    input_tokens = output_tokens = 0
    for value in models.values():
        value = _dict(value)
        input_tokens += (
            _int(value.get("inputTokens"))
            + _int(value.get("cacheReadInputTokens"))
            + _int(value.get("cacheCreationInputTokens"))
        )
        output_tokens += _int(value.get("outputTokens"))
    if input_tokens == 0 and output_tokens == 0:
        return None
    return input_tokens, output_tokens


# The `error` an assistant line carries when the model API refused the request (2.1.x).
_CLAUDE_API_ERRORS = {
    "authentication_failed": "auth",
    "oauth_org_not_allowed": "auth",
    "account_on_hold": "auth",
    "verification_required": "auth",
    "billing_error": "auth",
    "cloud_credential_error": "auth",
    "rate_limit": "rate_limit",
    "overloaded": "overloaded",
}

_API_ERROR_TYPES = {
    "authentication_error": "auth",
    "permission_error": "auth",
    "rate_limit_error": "rate_limit",
    "overloaded_error": "overloaded",
}


def _api_kind(status: Any, error_type: Any, error: Any) -> Optional[str]:
    """The errorKind of a refused API call, from its HTTP status, error type or Claude's name."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    if status in (529, 503):
        return "overloaded"
    return _API_ERROR_TYPES.get(_str(error_type) or "") or _CLAUDE_API_ERRORS.get(_str(error) or "")


_CLAUDE_KINDS = {
    "error_max_turns": "max_turns",
    "error_max_budget_usd": "budget",
    "error_max_budget": "budget",
}


class ClaudeTranslator(_Translator):
    """Claude Code's stream-json (2.1.x) as our events."""

    agent = "claude"

    def __init__(self, workspace: Optional[str] = None, model: Optional[str] = None) -> None:
        super().__init__(workspace, model)
        self._tools = {}  # type: Dict[str, Tuple[str, str]]
        self._last_text = None  # type: Optional[str]
        self._api_error = None  # type: Optional[str]  # errorKind of an API refusal
        self._retry_error = None  # type: Optional[str]  # errorKind of the last api_retry
        self._pending = {}  # type: Dict[str, Tuple[str, Dict[str, Any]]]  # plan tools' inputs
        self._tasks = []  # type: List[Dict[str, str]]  # TaskCreate/TaskUpdate's list

    def _translate(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        kind = data.get("type")
        session_id = _str(data.get("session_id"))
        if session_id:
            self._session_id = session_id
        if kind == "system":
            return self._system(data)
        if kind == "assistant":
            return self._assistant(data)
        if kind == "user":
            return self._user(data)
        if kind == "result":
            return self._final(data)
        return []

    def _system(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        if data.get("subtype") == "api_retry":
            # The CLI retries a refused API call (no event of ours); kept to name a failure.
            self._retry_error = _api_kind(data.get("error_status"), None, data.get("error"))
            return []
        if data.get("subtype") != "init":
            return []
        model = _str(data.get("model"))
        if model:
            self._model = model
        return [_event("init", agent=self.agent, model=self._model, sessionId=self._session_id)]

    def _assistant(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        message = _dict(data.get("message"))
        # A sub-agent's (Task's) messages carry the Task's tool_use id: its tools are shown,
        # its prose is not (the Task's result carries what it found).
        no_prose = bool(_str(data.get("parent_tool_use_id")))
        # A message the CLI made up for a refused API call: its text is the error the result
        # repeats, so it is not prose; its `error` says what kind of refusal it was.
        api_error = _str(data.get("error"))
        if (
            api_error
            or data.get("is_api_error_message") is True
            or data.get("isApiErrorMessage") is True
        ):
            self._api_error = (
                _api_kind(data.get("api_error_status"), data.get("api_error_type"), api_error)
                or "agent_error"
            )
            no_prose = True
        events = []  # type: List[Dict[str, Any]]
        for block in _list(message.get("content")):
            block = _dict(block)
            btype = block.get("type")
            if btype == "text" and not no_prose:
                text = _str(block.get("text"))
                if text and text.strip():
                    self._last_text = text
                    events.append(_event("text", text=text))
            elif btype in ("tool_use", "server_tool_use"):
                events.extend(self._tool_use(block))
        if "usage" in message and isinstance(message.get("usage"), dict):
            input_tokens, output_tokens = _claude_tokens(message["usage"])
            if input_tokens or output_tokens:
                self._usage.put(_str(message.get("id")), input_tokens, output_tokens)
                events.extend(self._usage_event(final=False))
        return events

    def _tool_use(self, block: Dict[str, Any]) -> List[Dict[str, Any]]:
        tool_id = _str(block.get("id")) or ""
        name = _str(block.get("name")) or "tool"
        tool_input = _dict(block.get("input"))
        summary = tool_summary(name, tool_input, self.workspace)
        if tool_id:
            self._tools[tool_id] = (name, summary)
            if name in ("TodoWrite", "TaskCreate", "TaskUpdate"):
                # The plan is published when the call succeeds: the CLI may refuse the tool
                # (2.1.x disables TodoWrite in print mode) and then the list did not change.
                self._pending[tool_id] = (name, tool_input)
        return [_event("tool_start", id=tool_id or None, tool=name, summary=summary)]

    def _plan(self, tool_id: str, result: Dict[str, Any], text: str) -> List[Dict[str, Any]]:
        """The `plan` a successful TodoWrite / TaskCreate / TaskUpdate call published."""
        name, tool_input = self._pending.pop(tool_id)
        if name == "TodoWrite":
            if not isinstance(tool_input.get("todos"), list):
                return []
            return [_event("plan", items=plan_items(tool_input["todos"]))]
        if name == "TaskCreate":
            task = _dict(_dict(result.get("tool_use_result")).get("task"))
            task_id = task.get("id")
            if not isinstance(task_id, (str, int)) or isinstance(task_id, bool):
                found = re.search(r"Task #(\S+) created", text)
                task_id = found.group(1) if found else str(len(self._tasks) + 1)
            subject = _str(tool_input.get("subject")) or _str(task.get("subject"))
            if not subject:
                return []
            self._tasks.append({"id": str(task_id), "text": subject, "status": "pending"})
        else:
            task_id = tool_input.get("taskId")
            task_id = str(task_id) if isinstance(task_id, (str, int)) else ""
            for task in list(self._tasks):
                if task["id"] != task_id:
                    continue
                status = _str(tool_input.get("status"))
                if status == "deleted":
                    self._tasks.remove(task)
                elif status in _PLAN_STATUSES:
                    task["status"] = status
                subject = _str(tool_input.get("subject"))
                if subject:
                    task["text"] = subject
        items = plan_items(
            [{"content": t["text"], "status": t["status"]} for t in self._tasks]
        )
        return [_event("plan", items=items)]

    def _user(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        message = _dict(data.get("message"))
        events = []  # type: List[Dict[str, Any]]
        for block in _list(message.get("content")):
            block = _dict(block)
            if block.get("type") != "tool_result":
                continue
            tool_id = _str(block.get("tool_use_id")) or ""
            name, summary = self._tools.pop(tool_id, (None, None))
            text = _TOOL_ERROR_TAG.sub("", _claude_result_text(block.get("content")))
            ok = block.get("is_error") is not True
            events.append(
                _event(
                    "tool_end",
                    id=tool_id or None,
                    tool=name,
                    summary=summary,
                    ok=ok,
                    excerpt=excerpt(text),
                )
            )
            if tool_id in self._pending:
                if ok:
                    events.extend(self._plan(tool_id, data, text))
                else:
                    self._pending.pop(tool_id)
        return events

    def _final(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        subtype = _str(data.get("subtype")) or ""
        is_error = data.get("is_error") is True
        ok = not is_error and subtype == "success"
        text = _str(data.get("result"))
        errors = [e for e in _list(data.get("errors")) if isinstance(e, str)]

        cost = _cost(data.get("total_cost_usd"))
        if cost is None:
            cost = _cost(data.get("cost_usd"))
        if cost is not None:
            self._usage.cost_usd = cost
        reported = _claude_model_usage(data.get("modelUsage"))
        if reported is None:
            tokens = _claude_tokens(data.get("usage"))
            reported = tokens if tokens != (0, 0) else None
        if reported is not None:
            running = self._usage.totals()
            self._usage.override = (max(reported[0], running[0]), max(reported[1], running[1]))
        if not self._model:
            models = list(_dict(data.get("modelUsage")).keys())
            if models:
                self._model = str(models[0])

        kind = None  # type: Optional[str]
        error = None  # type: Optional[str]
        if not ok:
            error = text or "; ".join(errors) or subtype or "the agent reported an error"
            kind = _CLAUDE_KINDS.get(subtype)
            if kind is None and "budget" in subtype:
                kind = "budget"
            if kind is None:
                kind = _api_kind(data.get("api_error_status"), data.get("api_error_type"), None)
            if kind is None and self._api_error != "agent_error":
                kind = self._api_error
            if kind is None:
                kind = classify_error("\n".join([text or ""] + errors))
            if kind is None:
                kind = self._retry_error or "agent_error"
        turns = data.get("num_turns")
        result = self._result_event(
            ok=ok,
            answer=text if text is not None else (self._last_text if ok else None),
            turns=turns if isinstance(turns, int) and not isinstance(turns, bool) else None,
            kind=kind,
            error=error,
        )
        self._result = result
        return self._usage_event(final=True) + [result]

    def finish(self, exit_code: int, stderr_tail: List[str]) -> List[Dict[str, Any]]:
        """The CLI exited: a `crash` result (and the last usage) when it never reported one."""
        if self._result is not None:
            return []
        events = self._usage_event(final=True) if self._usage_sent is not None else []
        self._result = self._crash_result(exit_code, stderr_tail)
        return events + [self._result]


# ---------------------------------------------------------------------------------------------
# OpenCode: run --format json


def _opencode_error(error: Any) -> Tuple[Optional[str], str]:
    """(errorKind, message) of an OpenCode error object `{name, data: {message, statusCode}}`."""
    error = _dict(error)
    name = _str(error.get("name")) or ""
    data = _dict(error.get("data"))
    message = _str(data.get("message")) or _str(error.get("message")) or name or "error"
    status = data.get("statusCode")
    kind = None  # type: Optional[str]
    if name == "ProviderAuthError" or status in (401, 403):
        kind = "auth"
    elif status == 429:
        kind = "rate_limit"
    elif status in (529, 503):
        kind = "overloaded"
    if kind is None:
        body = _str(data.get("responseBody")) or ""
        kind = classify_error("\n".join([name, message, body]))
    return kind, message


class OpenCodeTranslator(_Translator):
    """OpenCode's `run --format json` (1.18.x) as our events."""

    agent = "opencode"

    def __init__(self, workspace: Optional[str] = None, model: Optional[str] = None) -> None:
        super().__init__(workspace, model)
        self._init_sent = False
        self._steps = 0
        self._step_texts = []  # type: List[str]
        self._answer = []  # type: List[str]
        self._errors = []  # type: List[Tuple[Optional[str], str]]

    def _translate(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        kind = data.get("type")
        if kind not in ("step_start", "step_finish", "text", "tool_use", "error", "reasoning"):
            return []
        events = []  # type: List[Dict[str, Any]]
        session_id = _str(data.get("sessionID"))
        if session_id:
            self._session_id = session_id
        if not self._init_sent and self._session_id:
            self._init_sent = True
            events.append(
                _event("init", agent=self.agent, model=self._model, sessionId=self._session_id)
            )
        part = _dict(data.get("part"))
        if kind == "step_start":
            self._steps += 1
            self._step_texts = []
        elif kind == "text":
            text = _str(part.get("text"))
            if text and text.strip():
                self._step_texts.append(text)
                self._answer = list(self._step_texts)
                events.append(_event("text", text=text))
        elif kind == "tool_use":
            events.extend(self._tool(part))
        elif kind == "step_finish":
            events.extend(self._step_finish(part))
        elif kind == "error":
            self._errors.append(_opencode_error(data.get("error")))
        return events

    def _tool(self, part: Dict[str, Any]) -> List[Dict[str, Any]]:
        state = _dict(part.get("state"))
        status = _str(state.get("status"))
        if status not in ("completed", "error"):
            return []
        name = _str(part.get("tool")) or "tool"
        tool_id = _str(part.get("callID")) or _str(part.get("id"))
        tool_input = _dict(state.get("input"))
        summary = tool_summary(name, tool_input, self.workspace)
        if not summary:
            summary = _one_line(_str(state.get("title")) or "")
        metadata = _dict(state.get("metadata"))
        ok = status == "completed"
        if status == "completed":
            output = _str(state.get("output"))
            if output is None:
                output = _str(metadata.get("output")) or ""
            exit_code = metadata.get("exit")
            if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
                ok = False
        else:
            output = _str(state.get("error")) or ""
        events = [
            _event("tool_end", id=tool_id, tool=name, summary=summary, ok=ok, excerpt=excerpt(output))
        ]
        if name.lower() == "todowrite" and isinstance(tool_input.get("todos"), list):
            events.append(_event("plan", items=plan_items(tool_input["todos"])))
        return events

    def _step_finish(self, part: Dict[str, Any]) -> List[Dict[str, Any]]:
        tokens = _dict(part.get("tokens"))
        cache = _dict(tokens.get("cache"))
        input_tokens = _int(tokens.get("input")) + _int(cache.get("read")) + _int(cache.get("write"))
        output_tokens = _int(tokens.get("output")) + _int(tokens.get("reasoning"))
        self._usage.put(None, input_tokens, output_tokens)
        self._usage.add_cost(_cost(part.get("cost")))
        return self._usage_event(final=False)

    def finish(self, exit_code: int, stderr_tail: List[str]) -> List[Dict[str, Any]]:
        """The CLI exited: OpenCode has no result event of its own, so build it here (once)."""
        if self._result is not None:
            return []
        answer = "\n\n".join(self._answer) or None
        turns = self._steps or None
        if self._errors:
            kinds = [k for k, _ in self._errors if k]
            message = "\n".join(m for _, m in self._errors)
            result = self._result_event(False, answer, turns, kinds[-1] if kinds else None, message)
        elif exit_code != 0:
            result = self._crash_result(exit_code, stderr_tail)
            result.pop("answer", None)
            if answer:
                result["answer"] = _clip(answer, ANSWER_MAX)
            if turns:
                result["turns"] = turns
        else:
            result = self._result_event(True, answer, turns, None, None)
        self._result = result
        return self._usage_event(final=True) + [result]


def translator_for(
    agent: str, workspace: Optional[str] = None, model: Optional[str] = None
) -> Optional[_Translator]:
    """The translator for an agent's output (`claude`, `opencode`); None for `shell` and others."""
    name = (agent or "").strip().lower() if isinstance(agent, str) else ""
    if name in ("claude", "claude-code", "claude_code"):
        return ClaudeTranslator(workspace=workspace, model=model)
    if name == "opencode":
        return OpenCodeTranslator(workspace=workspace, model=model)
    return None
