"""The sidecar's translation of Claude Code's and OpenCode's JSON output into our events.

The module is loaded by path: it is pure and standard library only, and must not depend on the
rest of the sidecar package. Hand-written lines pin each rule; the recordings of the real CLIs
(tests/fixtures/agent_streams/<cli>-<scenario>.jsonl) pin what the CLIs really print.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_PATH = ROOT / "sidecar" / "src" / "sprite_reporter" / "agent_events.py"
STREAMS = ROOT / "tests" / "fixtures" / "agent_streams"
DOC = ROOT / "docs" / "agents.md"


def _load():
    spec = importlib.util.spec_from_file_location("agent_events", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("agent_events", module)
    spec.loader.exec_module(module)
    return module


ae = _load()
WS = "/home/sprite/work/repo"


def _doc_fields() -> dict[str, set[str]]:
    """The vocabulary's table in docs/agents.md: type -> the fields it lists."""
    fields: dict[str, set[str]] = {}
    section = DOC.read_text().split("## The event vocabulary", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|(.*?)\|", line)
        if m:
            fields[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    return fields


DOC_FIELDS = _doc_fields()
PLAN_STATUSES = {"pending", "in_progress", "completed"}
ERROR_KINDS = {"auth", "rate_limit", "overloaded", "max_turns", "budget", "agent_error", "crash"}


def check_event(event: dict[str, Any]) -> None:
    """An event as docs/agents.md defines it: v 1, a known type, only its fields, sane types."""
    assert event["v"] == 1
    assert event["type"] in DOC_FIELDS, event
    extra = set(event) - {"v", "type"} - DOC_FIELDS[event["type"]]
    assert not extra, (event["type"], extra)
    json.dumps(event)  # serialisable as is
    for key in ("text", "summary", "excerpt", "answer", "error", "tool", "id", "model", "sessionId"):
        if key in event:
            assert isinstance(event[key], str), (key, event)
    for key in ("ok", "final"):
        if key in event:
            assert isinstance(event[key], bool), (key, event)
    for key in ("inputTokens", "outputTokens", "turns"):
        if key in event:
            assert isinstance(event[key], int) and event[key] >= 0, (key, event)
    if "costUsd" in event:
        assert isinstance(event["costUsd"], float) and event["costUsd"] >= 0
    if "summary" in event:
        assert "\n" not in event["summary"] and len(event["summary"]) <= 120
    if "excerpt" in event:
        assert len(event["excerpt"]) <= 300 and "\x1b" not in event["excerpt"]
    if event["type"] == "plan":
        for item in event["items"]:
            assert set(item) == {"text", "status"} and item["status"] in PLAN_STATUSES
    if "errorKind" in event:
        assert event["errorKind"] in ERROR_KINDS


def run(translator, lines, exit_code=0, stderr=()) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in lines:
        if not isinstance(line, str):
            line = json.dumps(line)
        events.extend(translator.feed(line))
    events.extend(translator.finish(exit_code, list(stderr)))
    for event in events:
        check_event(event)
    return events


def of_type(events, type_):
    return [e for e in events if e["type"] == type_]


def test_the_doc_table_is_parsed():
    assert set(DOC_FIELDS) == {
        "init", "text", "tool_start", "tool_end", "plan", "usage", "files_changed", "result",
    }
    assert DOC_FIELDS["tool_end"] == {"id", "tool", "summary", "ok", "excerpt"}
    assert "errorKind" in DOC_FIELDS["result"]


def test_translator_for():
    assert isinstance(ae.translator_for("claude"), ae.ClaudeTranslator)
    assert isinstance(ae.translator_for("opencode"), ae.OpenCodeTranslator)
    assert ae.translator_for("shell") is None
    assert ae.translator_for("") is None
    t = ae.translator_for("claude", workspace=WS)
    assert t.workspace == WS


# --- summaries and excerpts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "tool,args,expected",
    [
        ("Bash", {"command": "npm test\nnpm run lint", "description": "x"}, "npm test"),
        ("bash", {"command": "  ls -la  "}, "ls -la"),
        ("Read", {"file_path": WS + "/src/app.py"}, "src/app.py"),
        ("Write", {"file_path": "/etc/hosts", "content": "x"}, "/etc/hosts"),
        ("Edit", {"file_path": WS + "/a/b.txt", "old_string": "a"}, "a/b.txt"),
        ("MultiEdit", {"file_path": WS + "/m.py"}, "m.py"),
        ("NotebookEdit", {"notebook_path": WS + "/n.ipynb"}, "n.ipynb"),
        ("read", {"filePath": WS + "/README.md"}, "README.md"),
        ("edit", {"filePath": "rel/path.py"}, "rel/path.py"),
        ("Grep", {"pattern": "def main", "path": "src"}, "def main"),
        ("glob", {"pattern": "**/*.py"}, "**/*.py"),
        ("WebFetch", {"url": "https://example.com/x", "prompt": "p"}, "https://example.com/x"),
        ("Task", {"description": "Find the bug", "prompt": "long"}, "Find the bug"),
        ("TodoWrite", {"todos": [{}, {}, {}]}, "3 items"),
        ("mcp__thing__do", {"count": 3, "query": "hello world"}, "query=hello world"),
        ("Weird", {"n": 1}, ""),
        ("Read", "not a dict", ""),
    ],
)
def test_tool_summary(tool, args, expected):
    assert ae.tool_summary(tool, args, WS) == expected


def test_summary_is_one_short_line():
    s = ae.tool_summary("Bash", {"command": "echo " + "x" * 500}, None)
    assert len(s) <= 120 and s.endswith("\u2026")
    assert ae.tool_summary("Bash", {"command": "\n\n  \x1b[31mred\x1b[0m\nmore"}) == "red"


def test_excerpt_strips_ansi_and_keeps_the_first_lines():
    text = "\x1b[32mPASS\x1b[0m test_a\n" + "".join("line %d\n" % i for i in range(50))
    out = ae.excerpt(text)
    assert out.startswith("PASS test_a\nline 0")
    assert "\x1b" not in out and len(out) <= 300 and out.endswith("\u2026")
    assert len(ae.excerpt("y" * 5000)) <= 300
    assert ae.excerpt("\n\n  ok  \n\n") == "  ok"
    assert ae.excerpt(None) == ""
    assert ae.excerpt("50%\r100%\ndone") == "100%\ndone"


# --- Claude Code ------------------------------------------------------------------------------

C_INIT = {
    "type": "system", "subtype": "init", "cwd": WS, "session_id": "sess-1",
    "tools": ["Bash", "Read"], "model": "claude-sonnet-4-5", "permissionMode": "bypassPermissions",
}


def c_assistant(content, msg_id="msg_1", usage=None, parent=None):
    message = {"id": msg_id, "type": "message", "role": "assistant", "content": content}
    if usage is not None:
        message["usage"] = usage
    return {"type": "assistant", "message": message, "parent_tool_use_id": parent,
            "session_id": "sess-1"}


def c_result(content, tool_use_id="toolu_1", is_error=False):
    return {"type": "user", "session_id": "sess-1", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use_id, "content": content,
         "is_error": is_error}]}}


USAGE = {"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
         "output_tokens": 5}


def c_final(**over):
    line = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 3,
            "result": "All done.", "session_id": "sess-1", "total_cost_usd": 0.0123,
            "usage": USAGE}
    line.update(over)
    return line


def test_claude_a_whole_run():
    t = ae.ClaudeTranslator(workspace=WS)
    events = run(t, [
        C_INIT,
        c_assistant([{"type": "thinking", "thinking": "hmm"}], usage=USAGE),
        c_assistant([{"type": "text", "text": "Let me look."}], usage=USAGE),
        c_assistant([{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                      "input": {"command": "npm test"}}], usage=USAGE),
        c_result("\x1b[31mFAIL\x1b[0m 1 test"),
        c_assistant([{"type": "tool_use", "id": "toolu_2", "name": "Read",
                      "input": {"file_path": WS + "/src/a.py"}}], msg_id="msg_2",
                    usage={"input_tokens": 1, "output_tokens": 7}),
        c_result([{"type": "text", "text": "1\tprint()"}], "toolu_2"),
        c_final(),
    ])
    types = [e["type"] for e in events]
    assert types == ["init", "usage", "text", "tool_start", "tool_end", "tool_start", "usage",
                     "tool_end", "usage", "result"]
    assert events[0] == {"v": 1, "type": "init", "agent": "claude", "model": "claude-sonnet-4-5",
                         "sessionId": "sess-1"}
    # The same message id, repeated on three lines, counts once.
    assert events[1]["inputTokens"] == 1110 and events[1]["outputTokens"] == 5
    assert events[6]["inputTokens"] == 1111 and events[6]["outputTokens"] == 12
    assert events[3] == {"v": 1, "type": "tool_start", "id": "toolu_1", "tool": "Bash",
                         "summary": "npm test"}
    assert events[4] == {"v": 1, "type": "tool_end", "id": "toolu_1", "tool": "Bash",
                         "summary": "npm test", "ok": True, "excerpt": "FAIL 1 test"}
    assert events[7]["summary"] == "src/a.py" and events[7]["tool"] == "Read"
    usage, result = events[-2:]
    assert usage["final"] is True and usage["costUsd"] == 0.0123
    assert result["ok"] is True and result["answer"] == "All done."
    assert result["costUsd"] == 0.0123 and result["turns"] == 3
    assert result["sessionId"] == "sess-1" and result["model"] == "claude-sonnet-4-5"
    assert "errorKind" not in result and "error" not in result
    assert t.result == result and t.session_id == "sess-1"
    assert t.usage["costUsd"] == 0.0123
    assert t.finish(0, []) == []  # the result came from the CLI: nothing more


def test_claude_todo_write_is_a_plan_once_it_succeeded():
    todos = [{"content": "Write tests", "status": "completed", "activeForm": "Writing tests"},
             {"content": "Fix bug", "status": "in_progress", "activeForm": "Fixing bug"},
             {"content": "Ship", "status": "weird"}, "junk", {"status": "pending"}]
    events = run(ae.ClaudeTranslator(), [
        c_assistant([{"type": "tool_use", "id": "t1", "name": "TodoWrite",
                      "input": {"todos": todos}}]),
        c_result("Todos have been modified successfully.", "t1"),
        c_final(),
    ])
    assert [e["type"] for e in events][:3] == ["tool_start", "tool_end", "plan"]
    assert events[0]["summary"] == "5 items"
    assert events[2]["items"] == [{"text": "Write tests", "status": "completed"},
                                  {"text": "Fix bug", "status": "in_progress"},
                                  {"text": "Ship", "status": "pending"}]


def test_claude_refused_todo_write_is_no_plan():
    events = run(ae.ClaudeTranslator(), [
        c_assistant([{"type": "tool_use", "id": "t1", "name": "TodoWrite",
                      "input": {"todos": [{"content": "x", "status": "pending"}]}}]),
        c_result("<tool_use_error>Error: No such tool available: TodoWrite.</tool_use_error>",
                 "t1", True),
    ])
    assert not of_type(events, "plan")
    assert of_type(events, "tool_end")[0]["ok"] is False


def test_claude_task_tools_make_a_plan():
    def create(tid, subject, task_id, structured=True):
        line = c_result("Task #%s created successfully: %s" % (task_id, subject), tid)
        if structured:
            line["tool_use_result"] = {"task": {"id": task_id, "subject": subject}}
        return [c_assistant([{"type": "tool_use", "id": tid, "name": "TaskCreate",
                              "input": {"subject": subject, "description": "d"}}]), line]

    def update(tid, task_id, **inp):
        return [c_assistant([{"type": "tool_use", "id": tid, "name": "TaskUpdate",
                              "input": dict(taskId=task_id, **inp)}]),
                c_result("Updated task #%s" % task_id, tid)]

    events = run(ae.ClaudeTranslator(), [
        *create("a", "Write tests", "1"), *create("b", "Fix bug", "2", structured=False),
        *create("c", "Ship", "3"), *update("d", "1", status="completed"),
        *update("e", "2", status="in_progress", subject="Fix the bug"),
        *update("f", "3", status="deleted"), *update("g", "99", status="completed"),
    ])
    plans = of_type(events, "plan")
    assert len(plans) == 7
    assert plans[2]["items"] == [{"text": "Write tests", "status": "pending"},
                                 {"text": "Fix bug", "status": "pending"},
                                 {"text": "Ship", "status": "pending"}]
    assert plans[-1]["items"] == [{"text": "Write tests", "status": "completed"},
                                  {"text": "Fix the bug", "status": "in_progress"}]


def test_claude_api_retry_names_a_failure_that_says_nothing_else():
    retry = {"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 429,
             "error": "rate_limit"}
    events = run(ae.ClaudeTranslator(), [C_INIT, retry, c_final(is_error=True, result="odd")])
    assert events[-1]["errorKind"] == "rate_limit"
    events = run(ae.ClaudeTranslator(), [C_INIT, retry, c_final()])
    assert events[-1]["ok"] is True and "errorKind" not in events[-1]


def test_claude_tool_error_and_unknown_result():
    events = run(ae.ClaudeTranslator(), [
        c_assistant([{"type": "tool_use", "id": "t1", "name": "Edit", "input": {}}]),
        c_result("<tool_use_error>String to replace not found</tool_use_error>", "t1", True),
        c_result("orphan", "t-unknown"),
        c_final(),
    ])
    ends = of_type(events, "tool_end")
    assert ends[0]["ok"] is False and ends[0]["excerpt"] == "String to replace not found"
    assert ends[1] == {"v": 1, "type": "tool_end", "id": "t-unknown", "ok": True,
                       "excerpt": "orphan"}


def test_claude_subagent_prose_is_not_shown_but_its_tools_are():
    events = run(ae.ClaudeTranslator(), [
        c_assistant([{"type": "text", "text": "sub says"},
                     {"type": "tool_use", "id": "t9", "name": "Grep", "input": {"pattern": "x"}}],
                    parent="toolu_task"),
        c_final(),
    ])
    assert not of_type(events, "text")
    assert of_type(events, "tool_start")[0]["summary"] == "x"


@pytest.mark.parametrize(
    "over,kind",
    [
        ({"is_error": True, "result": "Invalid API key \u00b7 Please run /login"}, "auth"),
        ({"is_error": True, "result": 'API Error: 401 {"type":"authentication_error"}'}, "auth"),
        ({"is_error": True, "result": "API Error: 429 rate limit"}, "rate_limit"),
        ({"is_error": True, "result": 'API Error: 529 {"type":"overloaded_error"}'}, "overloaded"),
        ({"subtype": "error_max_turns", "is_error": True, "result": None}, "max_turns"),
        ({"subtype": "error_max_budget_usd", "is_error": True}, "budget"),
        ({"subtype": "error_during_execution", "is_error": True, "result": None,
          "errors": ["boom"]}, "agent_error"),
        ({"is_error": True, "result": "something odd"}, "agent_error"),
    ],
)
def test_claude_error_kinds(over, kind):
    events = run(ae.ClaudeTranslator(), [C_INIT, c_final(**over)])
    result = events[-1]
    assert result["ok"] is False and result["errorKind"] == kind
    assert result["error"]


@pytest.mark.parametrize(
    "error,kind",
    [("authentication_failed", "auth"), ("rate_limit", "rate_limit"),
     ("overloaded", "overloaded"), ("server_error", "agent_error")],
)
def test_claude_api_error_message_is_not_prose_and_names_the_kind(error, kind):
    line = c_assistant([{"type": "text", "text": "API Error: something"}], msg_id="m",
                       usage={"input_tokens": 0, "output_tokens": 0})
    line["error"] = error
    events = run(ae.ClaudeTranslator(), [
        C_INIT, line,
        c_final(is_error=True, result="API Error: something", total_cost_usd=0, usage={})])
    assert not of_type(events, "text")
    assert events[-1]["errorKind"] == kind and events[-1]["error"] == "API Error: something"


def test_claude_crash_without_result():
    t = ae.ClaudeTranslator()
    events = run(t, [C_INIT, c_assistant([{"type": "text", "text": "hi"}], usage=USAGE)],
                 exit_code=1, stderr=["Error: something exploded", ""])
    result = events[-1]
    assert result["type"] == "result" and result["ok"] is False
    assert result["errorKind"] == "crash" and "something exploded" in result["error"]
    assert result["inputTokens"] == 1110 and result["sessionId"] == "sess-1"
    assert events[-2]["type"] == "usage" and events[-2]["final"] is True
    assert t.finish(1, []) == []


def test_claude_crash_classified_from_stderr():
    events = run(ae.ClaudeTranslator(), [], exit_code=1,
                 stderr=["Invalid API key \u00b7 Please run /login"])
    assert events == [events[-1]] and events[-1]["errorKind"] == "auth"
    events = run(ae.ClaudeTranslator(), [], exit_code=-9, stderr=[])
    assert events[-1]["errorKind"] == "crash" and "signal 9" in events[-1]["error"]


def test_claude_model_usage_totals_win():
    t = ae.ClaudeTranslator()
    events = run(t, [c_final(modelUsage={
        "claude-a": {"inputTokens": 5, "outputTokens": 6, "cacheReadInputTokens": 7,
                     "cacheCreationInputTokens": 8, "costUSD": 0.01},
        "claude-b": {"inputTokens": 1, "outputTokens": 1}})])
    assert events[-1]["inputTokens"] == 21 and events[-1]["outputTokens"] == 7
    assert events[-1]["model"] == "claude-a"


# --- OpenCode ---------------------------------------------------------------------------------


def oc(type_, part=None, **extra):
    line = {"type": type_, "timestamp": 1700000000000, "sessionID": "ses_1"}
    if part is not None:
        line["part"] = part
    line.update(extra)
    return line


def oc_tool(tool, inp, status="completed", output="", call="call_1", **state):
    st = {"status": status, "input": inp, "title": "t", "metadata": {}}
    if status == "completed":
        st["output"] = output
    st.update(state)
    return oc("tool_use", {"type": "tool", "tool": tool, "callID": call, "id": "prt_x",
                           "state": st})


def oc_finish(cost, inp, out, read=0, write=0, reasoning=0):
    return oc("step_finish", {"type": "step-finish", "reason": "stop", "cost": cost,
                              "tokens": {"input": inp, "output": out, "reasoning": reasoning,
                                         "cache": {"read": read, "write": write}}})


def test_opencode_a_whole_run():
    t = ae.OpenCodeTranslator(workspace=WS, model="anthropic/claude-x")
    events = run(t, [
        oc("step_start", {"type": "step-start"}),
        oc("text", {"type": "text", "text": "I'll run the tests."}),
        oc_tool("bash", {"command": "npm test", "description": "Run tests"}, output="ok\n"),
        oc_tool("edit", {"filePath": WS + "/src/x.ts"}, status="error", call="call_2",
                error="oldString not found"),
        oc_finish(0.01, 100, 20, read=1000, write=10, reasoning=5),
        oc("step_start", {"type": "step-start"}),
        oc("text", {"type": "text", "text": "Done: tests pass."}),
        oc_finish(0.02, 50, 10),
    ])
    types = [e["type"] for e in events]
    assert types == ["init", "text", "tool_end", "tool_end", "usage", "text", "usage", "usage",
                     "result"]
    assert events[0] == {"v": 1, "type": "init", "agent": "opencode", "model": "anthropic/claude-x",
                         "sessionId": "ses_1"}
    assert events[2] == {"v": 1, "type": "tool_end", "id": "call_1", "tool": "bash",
                         "summary": "npm test", "ok": True, "excerpt": "ok"}
    assert events[3]["ok"] is False and events[3]["summary"] == "src/x.ts"
    assert events[3]["excerpt"] == "oldString not found"
    assert events[4]["inputTokens"] == 1110 and events[4]["outputTokens"] == 25
    assert events[6]["inputTokens"] == 1160 and events[6]["outputTokens"] == 35
    assert events[6]["costUsd"] == pytest.approx(0.03)
    result = events[-1]
    assert result["ok"] is True and result["answer"] == "Done: tests pass."
    assert result["turns"] == 2 and result["sessionId"] == "ses_1"
    assert result["costUsd"] == pytest.approx(0.03) and result["inputTokens"] == 1160
    assert t.result == result and t.session_id == "ses_1"
    assert t.finish(0, []) == []


def test_opencode_answer_is_the_last_step_with_text():
    events = run(ae.OpenCodeTranslator(), [
        oc("step_start", {}), oc("text", {"text": "a"}), oc("text", {"text": "b"}),
        oc("step_start", {}), oc_tool("read", {"filePath": "x"}),
    ])
    assert events[-1]["answer"] == "a\n\nb"


def test_opencode_todowrite_is_a_plan():
    events = run(ae.OpenCodeTranslator(), [oc_tool("todowrite", {"todos": [
        {"content": "one", "status": "completed", "priority": "high", "id": "1"},
        {"content": "two", "status": "cancelled", "priority": "low", "id": "2"}]})])
    plan = of_type(events, "plan")[0]
    assert plan["items"] == [{"text": "one", "status": "completed"},
                             {"text": "two", "status": "completed"}]
    assert of_type(events, "tool_end")[0]["summary"] == "2 items"


def test_opencode_bash_nonzero_exit_is_not_ok():
    events = run(ae.OpenCodeTranslator(), [
        oc_tool("bash", {"command": "false"}, output="", metadata={"exit": 1})])
    assert of_type(events, "tool_end")[0]["ok"] is False


@pytest.mark.parametrize(
    "error,kind",
    [
        ({"name": "ProviderAuthError", "data": {"providerID": "anthropic", "message": "bad key"}},
         "auth"),
        ({"name": "APIError", "data": {"message": "Unauthorized", "statusCode": 401}}, "auth"),
        ({"name": "APIError", "data": {"message": "invalid x-api-key"}}, "auth"),
        ({"name": "APIError", "data": {"message": "Too Many Requests", "statusCode": 429}},
         "rate_limit"),
        ({"name": "APIError", "data": {"message": "Overloaded", "statusCode": 529}}, "overloaded"),
        ({"name": "UnknownError", "data": {"message": "boom"}}, "agent_error"),
        ("not a dict", "agent_error"),
    ],
)
def test_opencode_error_kinds(error, kind):
    events = run(ae.OpenCodeTranslator(), [oc("error", error=error)], exit_code=1)
    result = events[-1]
    assert result["ok"] is False and result["errorKind"] == kind and result["error"]


def test_opencode_crash_and_stderr():
    events = run(ae.OpenCodeTranslator(), [], exit_code=1, stderr=["Error: 401 Unauthorized"])
    assert events[-1]["errorKind"] == "auth"
    events = run(ae.OpenCodeTranslator(), [oc("step_start", {})], exit_code=137, stderr=[])
    assert events[-1]["errorKind"] == "crash" and events[-1]["turns"] == 1


# --- robustness -------------------------------------------------------------------------------

GARBAGE = [
    "", "   ", "not json", "{", "[1,2]", "null", "42", '"str"', "{}", '{"type": 7}',
    '{"type":"brand_new_event","x":1}', '{"type":"system","subtype":"status"}',
    '{"type":"assistant"}', '{"type":"assistant","message":"str"}',
    '{"type":"assistant","message":{"content":"str","usage":[]}}',
    '{"type":"assistant","message":{"content":[null,1,"x",{"type":"tool_use","input":null,"name":5}]}}',
    '{"type":"user","message":{"content":[{"type":"tool_result","content":{"odd":1},"is_error":"yes"}]}}',
    '{"type":"result","usage":"x","total_cost_usd":"NaN","num_turns":true,"modelUsage":[]}',
    '{"type":"text","part":null}', '{"type":"tool_use","part":{"state":[]}}',
    '{"type":"tool_use","part":{"tool":null,"state":{"status":"completed","input":"x","output":5}}}',
    '{"type":"step_finish","part":{"tokens":{"input":"1","cache":null},"cost":-1}}',
    '{"type":"error","error":null}', '{"type":"step_start","sessionID":5}',
    '{"type":"assistant","message":{"content":[{"type":"text","text":"deep"}]}}' + "]" * 3,
    "[" * 100000,
]


@pytest.mark.parametrize("cls", ["ClaudeTranslator", "OpenCodeTranslator"])
def test_garbage_never_raises_and_unknown_lines_yield_nothing(cls):
    t = getattr(ae, cls)()
    for line in GARBAGE:
        for event in t.feed(line):
            check_event(event)
    for line in ["not json", "{}", '{"type":"brand_new_event"}', "[" * 100000]:
        assert t.feed(line) == []
    for event in t.finish(0, ["x", None, 3]):  # type: ignore[list-item]
        check_event(event)


# --- the real CLIs' recordings ----------------------------------------------------------------
# Claude Code 2.1.332 and OpenCode 1.18.33 against tests/modelserver's scripted scenarios.

RECORDED_WORKSPACE = re.compile(r"/tmp/rec-[^/\"]+/workspace")


def _recording(name: str) -> list[str]:
    path = STREAMS / (name + ".jsonl")
    if not path.exists():
        pytest.skip("no recording %s yet" % path.name)
    return path.read_text().splitlines()


def replay(name: str, exit_code: int = 0, stderr=()):
    """(translator, events) of a recording, with the workspace the CLI ran in."""
    lines = _recording(name)
    found = RECORDED_WORKSPACE.search("\n".join(lines))
    t = ae.translator_for(name.split("-")[0], workspace=found.group(0) if found else None)
    assert t is not None
    return t, run(t, lines, exit_code, stderr)


def _all_recordings() -> list[str]:
    return sorted(p.stem for p in STREAMS.glob("*.jsonl")) if STREAMS.exists() else []


@pytest.mark.parametrize("name", _all_recordings() or ["none"])
def test_every_recording_translates_to_valid_events(name):
    lines = _recording(name)
    t, events = replay(name)
    results = of_type(events, "result")
    assert len(results) == 1 and events[-1] is results[0] and t.result == results[0]
    assert results[0].get("sessionId") == t.session_id and t.session_id
    # Every line of the recording is JSON the translator took without complaint.
    assert all(line.strip().startswith("{") for line in lines if line.strip())
    starts = {e["id"] for e in of_type(events, "tool_start")}
    for end in of_type(events, "tool_end"):
        if name.startswith("claude"):
            assert end["id"] in starts
    assert events[0]["type"] == "init" or name == "opencode-auth_error" or not events


def _tools(events):
    return [(e["type"], e["tool"], e["summary"], e.get("ok")) for e in events
            if e["type"] in ("tool_start", "tool_end")]


def test_recorded_claude_tools():
    t, events = replay("claude-tools")
    assert _tools(events) == [
        ("tool_start", "Bash", "echo hi > notes.txt", None),
        ("tool_end", "Bash", "echo hi > notes.txt", True),
        ("tool_start", "Write", "hello.py", None),
        ("tool_end", "Write", "hello.py", True),
        ("tool_start", "Edit", "hello.py", None),
        ("tool_end", "Edit", "hello.py", True),
        ("tool_start", "Read", "hello.py", None),
        ("tool_end", "Read", "hello.py", True),
    ]
    assert of_type(events, "tool_end")[0]["excerpt"] == "(Bash completed with no output)"
    assert "print('hello, world')" in of_type(events, "tool_end")[-1]["excerpt"]
    init = events[0]
    assert init["agent"] == "claude" and init["model"] == "claude-sonnet-4-5"
    assert [e["text"] for e in of_type(events, "text")] == [
        "I will write a note with the shell.", "Done: notes.txt and hello.py are written."]
    final_usage, result = events[-2:]
    assert final_usage["type"] == "usage" and final_usage["final"] is True
    assert result["ok"] is True and result["answer"] == "Done: notes.txt and hello.py are written."
    assert result["costUsd"] == pytest.approx(0.0168) and result["turns"] == 5
    # The assistant lines carry the usage of the stream's start (output 1); the result's
    # modelUsage has the real totals.
    assert result["inputTokens"] > 0 and result["outputTokens"] > 5
    assert final_usage["inputTokens"] == result["inputTokens"]
    assert final_usage["outputTokens"] == result["outputTokens"]
    running = [e for e in of_type(events, "usage") if not e["final"]]
    assert running and all(e["inputTokens"] <= result["inputTokens"] for e in running)
    assert t.usage["costUsd"] == pytest.approx(0.0168)


def test_recorded_claude_hello_and_session():
    _, events = replay("claude-hello")
    assert [e["type"] for e in events] == ["init", "text", "usage", "usage", "result"]
    assert events[-1]["answer"] == "Hello from the scripted model!" and events[-1]["ok"]
    t1, first = replay("claude-session")
    t2, second = replay("claude-session-resume")
    assert t1.session_id and t2.session_id
    assert "PELICAN" in second[-1]["answer"]


@pytest.mark.parametrize(
    "name,kind",
    [("claude-auth_error", "auth"), ("claude-overloaded", "overloaded")],
)
def test_recorded_claude_api_errors(name, kind):
    _, events = replay(name, exit_code=1)
    result = events[-1]
    assert result["ok"] is False and result["errorKind"] == kind and result["error"]
    # The CLI's made-up assistant message repeats the error: it is not shown as prose.
    assert not of_type(events, "text")


def test_recorded_claude_retries_that_recovered():
    _, events = replay("claude-rate_limited")
    assert events[-1]["ok"] is True and "errorKind" not in events[-1]
    assert len(of_type(events, "text")) == 1


def test_a_recorded_claude_stream_dropped_every_time_fails_with_the_cause():
    """The scripted server cuts every answer (streamed, then the CLI's non-streaming retry)."""
    _, events = replay("claude-dropped", exit_code=1)
    result = events[-1]
    assert result["ok"] is False and result["errorKind"] in ("agent_error", "crash")
    assert "Connection to the API was lost" in result["error"]
    assert not of_type(events, "text")


def test_recorded_claude_todo_refused():
    """Claude Code 2.1.332 in print mode refuses TodoWrite (it offers TaskCreate/TaskUpdate)."""
    _, events = replay("claude-todo")
    assert not of_type(events, "plan")
    end = of_type(events, "tool_end")[0]
    assert end["tool"] == "TodoWrite" and end["ok"] is False and end["summary"] == "3 items"
    assert events[-1]["ok"] is True


def test_recorded_opencode_tools():
    t, events = replay("opencode-tools")
    assert _tools(events) == [
        ("tool_end", "bash", "echo hi > notes.txt", True),
        ("tool_end", "write", "hello.py", True),
        ("tool_end", "edit", "hello.py", True),
        ("tool_end", "read", "hello.py", True),
    ]
    assert events[0]["type"] == "init" and events[0]["agent"] == "opencode"
    result = events[-1]
    assert result["ok"] is True and result["answer"] == "Done: notes.txt and hello.py are written."
    assert result["turns"] == 5
    assert result["costUsd"] == pytest.approx(0.00351 + 3 * 0.003375 + 0.003165)
    assert result["inputTokens"] == 5000 and result["outputTokens"] == 34 + 3 * 25 + 11
    assert result["sessionId"] == t.session_id == "ses_dc52c6f3bffeSS3MHTqPAMWeLn"
    usage = of_type(events, "usage")
    assert [u["final"] for u in usage] == [False] * 5 + [True]
    assert [u["inputTokens"] for u in usage] == [1000, 2000, 3000, 4000, 5000, 5000]


def test_recorded_opencode_hello():
    _, events = replay("opencode-hello")
    assert [e["type"] for e in events] == ["init", "text", "usage", "usage", "result"]
    assert events[-1]["answer"] == "Hello from the scripted model!" and events[-1]["turns"] == 1


def test_recorded_opencode_todo():
    _, events = replay("opencode-todo")
    plan = of_type(events, "plan")
    assert plan and plan[0]["items"] == [
        {"text": "Write the tests", "status": "completed"},
        {"text": "Fix the bug", "status": "in_progress"},
        {"text": "Update the docs", "status": "pending"},
    ]
    assert of_type(events, "tool_end")[0]["summary"] == "3 items"


@pytest.mark.parametrize(
    "name,kind,error",
    [("opencode-auth_error", "auth", "invalid x-api-key"),
     ("opencode-overloaded", "overloaded", "Overloaded")],
)
def test_recorded_opencode_api_errors(name, kind, error):
    t, events = replay(name, exit_code=1)
    result = events[-1]
    assert result["ok"] is False and result["errorKind"] == kind
    assert result["error"] == error
    assert result["sessionId"] == t.session_id
