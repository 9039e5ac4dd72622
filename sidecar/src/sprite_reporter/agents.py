"""The one table of agent command lines, for a job and for a message of a session."""

import shutil
from typing import List

AGENTS = ("claude", "opencode", "shell")


def agent_argv(agent: str, task: str) -> List[str]:
    """The one table of agent command lines. The task is always a single argv element.

    For `shell` the task IS the script the user asked to run; `--` keeps a script that starts
    with '-' from being read as a shell option.
    """
    if agent == "claude":
        return ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "text", task]
    if agent == "opencode":
        return ["opencode", "run", task]
    if agent == "shell":
        shell = "bash" if shutil.which("bash") else "sh"
        return [shell, "-c", "--", task]
    raise ValueError(agent)


def session_agent_argv(agent: str, task: str, conversation_id: str, resume: bool) -> List[str]:
    """A message of a session: the agent continues one conversation from message to message.

    Claude Code: `--session-id <uuid>` pins the first message's conversation to our id and
    `--resume <uuid>` (`-r`) continues it. OpenCode makes its own ids, so `run --continue`
    (`-c`) continues the last session of this sprite (the only one it has). The shell agent
    has no conversation: each message is one command.
    """
    if agent == "claude":
        base = ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "text"]
        flag = "--resume" if resume else "--session-id"
        return base + [flag, conversation_id, task]
    if agent == "opencode":
        return ["opencode", "run"] + (["--continue"] if resume else []) + [task]
    return agent_argv(agent, task)
