"""The one table of agent command lines, for a job and for a message of a session.

Claude Code and OpenCode print their own machine-readable events (`stream-json`, `--format
json`), which `agent_events` translates: without them the channel would see nothing of the
agent's work until it ended. The task is always ONE argv element, after `--`, so a task that
starts with '-' is never read as an option.

The job's model (AGENT_MODEL, checked by `config.agent_model_env`) is two argv elements of its
own: `--model X` for Claude Code, `-m X` for OpenCode (which wants `provider/model`; the value
goes as given, and a provider its config lacks is OpenCode's own error). The shell agent gets
no flag: AGENT_MODEL is in its environment, like every variable of the job.
"""

import shutil
from typing import List, Optional

AGENTS = ("claude", "opencode", "shell")
#: Agents whose stdout is a stream of JSON events rather than text for people.
STRUCTURED_AGENTS = ("claude", "opencode")

CLAUDE = ["claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
OPENCODE = ["opencode", "run", "--format", "json"]


def _budget(max_cost_usd: Optional[str]) -> List[str]:
    """Claude Code's own cost cap (the dispatcher enforces `--max-cost` for every agent too)."""
    return ["--max-budget-usd", max_cost_usd] if max_cost_usd else []


def _model(agent: str, model: Optional[str]) -> List[str]:
    """The model flag of `agent` (nothing without a model, and nothing for the shell agent)."""
    if not model:
        return []
    if agent == "claude":
        return ["--model", model]
    if agent == "opencode":
        return ["-m", model]
    return []


def agent_argv(
    agent: str, task: str, max_cost_usd: Optional[str] = None, model: Optional[str] = None
) -> List[str]:
    """The command line of a one-shot job.

    For `shell` the task IS the script the user asked to run; `--` keeps a script that starts
    with '-' from being read as a shell option.
    """
    if agent == "claude":
        return CLAUDE + _model(agent, model) + _budget(max_cost_usd) + ["--", task]
    if agent == "opencode":
        return OPENCODE + _model(agent, model) + ["--", task]
    if agent == "shell":
        shell = "bash" if shutil.which("bash") else "sh"
        return [shell, "-c", "--", task]
    raise ValueError(agent)


def session_agent_argv(
    agent: str,
    task: str,
    conversation_id: str,
    resume: bool,
    max_cost_usd: Optional[str] = None,
    model: Optional[str] = None,
) -> List[str]:
    """A message of a session: the agent continues one conversation from message to message.

    `conversation_id` is what the agent reported last time (the server keeps it), or for a
    first message the id we made. Claude Code: `--session-id <uuid>` pins the first message's
    conversation to our id and `--resume <id>` continues it. OpenCode makes its own ids
    (`ses_...`): `--session <id>` continues the one it reported; before it reported one,
    `--continue` takes the last session of this sprite (the only one it has). The shell agent
    has no conversation: each message is one command. Every message, new or resumed, names the
    job's model when there is one.
    """
    if agent == "claude":
        flag = "--resume" if resume else "--session-id"
        return CLAUDE + _model(agent, model) + _budget(max_cost_usd) + [flag, conversation_id, "--", task]
    if agent == "opencode":
        opencode = OPENCODE + _model(agent, model)
        if not resume:
            return opencode + ["--", task]
        if conversation_id.startswith("ses_"):
            return opencode + ["--session", conversation_id, "--", task]
        return opencode + ["--continue", "--", task]
    return agent_argv(agent, task)
