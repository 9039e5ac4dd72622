"""claude-approval-hook: Claude Code's PreToolUse hook for the channel's approvals policy.

The sidecar copies this file, as it is, next to its approval broker's socket and names it in
the settings it passes to Claude Code (`--settings`); it is never imported there. Claude Code
runs it before every tool call as `<python> -I <this file> <socket> <wait seconds>` through
sh, with the call on stdin (`{"tool_name", "tool_input", ...}`). It passes the call to the
broker over the Unix socket, one JSON line `{"tool", "input"}`, and waits for the broker's
one line `{"decision": "allow"|"deny", "reason", "asked"}`:
- a call the policy does not name (`asked` false): it prints nothing, exits 0, and the call
  runs as it would without approvals;
- otherwise it prints Claude Code's PreToolUse decision, `allow` or `deny` with the reason
  (a denial's reason is what the model is told).

It fails closed: anything that goes wrong (no broker, no answer within the wait, a malformed
request) is a `deny` saying why. Claude Code runs a call whose hook fails or times out, so
the sidecar gives the hook a longer timeout than this wait, and `|| exit 2` after it (exit
code 2 blocks the call) in case python itself cannot run.

Standard library only, python3 >= 3.9, no import of the sidecar: it runs on its own.
"""

import json
import socket
import sys
from typing import Dict, List

MAX_ANSWER_BYTES = 64 * 1024


def decision(kind: str, reason: str) -> Dict[str, object]:
    """Claude Code's PreToolUse answer: `allow` or `deny`, with the reason it shows."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": kind,
            "permissionDecisionReason": reason,
        }
    }


def ask_broker(socket_path: str, request: bytes, wait_s: float) -> Dict[str, object]:
    """Send the call, wait for the broker's one-line answer (the socket stays open meanwhile:
    the broker stops asking the dispatcher when it closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(wait_s)
        conn.connect(socket_path)
        conn.sendall(request)
        chunks = []  # type: List[bytes]
        size = 0
        while size < MAX_ANSWER_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if b"\n" in chunk:
                break
    answer = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    if not isinstance(answer, dict):
        raise ValueError("the answer is not an object")
    return answer


def decide(argv: List[str], stdin: "object") -> Dict[str, object]:
    """The decision to print; an empty dict for a call the policy does not name."""
    if len(argv) < 3:
        return decision("deny", "the approval hook was run without its socket and wait")
    socket_path = argv[1]
    try:
        wait_s = float(argv[2])
        call = json.load(stdin)  # type: ignore[arg-type]
    except ValueError:
        return decision("deny", "the approval hook could not read the tool call it was given")
    tool = call.get("tool_name") if isinstance(call, dict) else None
    arguments = call.get("tool_input") if isinstance(call, dict) else None
    if not isinstance(tool, str) or not tool:
        return decision("deny", "the approval hook was given a tool call without a tool name")
    request = {"tool": tool, "input": arguments if isinstance(arguments, dict) else {}}
    line = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    try:
        answer = ask_broker(socket_path, line, wait_s)
    except socket.timeout:
        return decision("deny", f"no approval decision arrived within {wait_s:g} seconds, so the call was not run")
    except (OSError, ValueError) as exc:
        return decision("deny", f"the sprite's approval broker could not be asked ({type(exc).__name__}), so the call was not run")
    reason = answer.get("reason")
    reason = reason if isinstance(reason, str) else ""
    if answer.get("decision") == "allow":
        return decision("allow", reason or "approved") if answer.get("asked") else {}
    return decision("deny", reason or "not approved")


def main(argv: List[str]) -> int:
    out = decide(argv, sys.stdin)
    if out:
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
