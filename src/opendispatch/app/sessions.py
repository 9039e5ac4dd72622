"""Sessions: named conversations with an agent, one message at a time, kept between messages.

Each message becomes a job of its session (own id, output, card; listed by `/od-jobs`) and
runs through the ordinary `JobRunner`. Sessions decide *when* each one runs (one at a time,
the rest queued) and *where*:

- persistent: one sprite for the whole session. Its sidecar long-polls `next_message` with
  the session's token; the runner hands it each job (`deliver`) instead of spawning, and
  gives it back (`release`) instead of destroying. After `idle_suspend_s` without a message
  the sprite is suspended (when the backend can), and woken by the next message; after
  `max_idle_s` it is destroyed and the channel told.
- not persistent: every message runs in a fresh sprite; the sidecar hands the agent's
  conversation back (`save_agent_state`) and the next sprite restores it (`agent_state`).

The parts, each in its own module, share one registry of live sessions:

- `session_registry.py`: `LiveSessions`, the one owner of each session's live state (loaded
  from the store, saved, waited on);
- `session_commands.py`: `SessionCommands`, what chat asks (start, stop, send, a plain
  message, list, cancel a queued message);
- `session_supervisor.py`: `SessionSupervisor`, one task per session (bring its sprite up,
  run its messages, idle, suspend, wake, end), and `SessionSpriteHooks`, the runner's hooks
  for a persistent session's sprite;
- `session_polls.py`: `SessionPolls`, what sidecars ask (the long poll, the agent's state).

Timers are cancel-scope deadlines in each session's supervisor task; sessions are stored, so
a restarted dispatcher resumes them (the persistent sprite reconnects with its token).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import attrs

from ..domain.job import Conversation
from ..domain.job_spec import format_duration
from ..domain.messages import ChatMessage, MessageRef
from ..domain.session import Session
from ..ports.chat import ChatPort

#: Every part of sessions logs under this one name, as before they were split.
log = logging.getLogger(__name__)


@attrs.frozen
class SessionSettings:
    """Timers and switches of sessions; config.py fills them from the environment."""

    idle_suspend_s: float = 15 * 60.0
    max_idle_s: float = 24 * 3600.0
    allow_shell: bool = False
    poll_wait_s: float = 25.0
    token_lifetime_s: float = 30 * 24 * 3600.0


async def say(chat: ChatPort, conversation: Conversation, message: ChatMessage) -> MessageRef | None:
    """Tell a session's conversation; a chat failure is logged, never raised."""
    try:
        return await chat.send(conversation, message)
    except Exception:
        log.warning("could not reply in chat", exc_info=True)
        return None


def session_table_lines(sessions: Collection[Session], now: float) -> list[str]:
    """`/od-list`'s sessions part: name, state, age, messages, mode, what, owner."""
    if not sessions:
        return ["No sessions. Start one with /od-start NAME [--persistent]."]
    lines = ["Sessions:"]
    for session in sessions:
        age = format_duration(max(0.0, now - session.created_at))
        mode = "persistent" if session.persistent else "sprite per message"
        count = f"{session.message_count} message{'s' if session.message_count != 1 else ''}"
        extra = f", {len(session.queue)} queued" if session.queue else ""
        lines.append(
            f"{session.name}  {session.state.value:<9} {age:>7}  {count}{extra}  {mode}  "
            f"{session.spec.summary()}  ({session.owner.name})"
        )
    return lines
