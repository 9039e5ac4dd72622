"""A session resumes the conversation the agent reported, not the id we first gave it."""

from __future__ import annotations

from typing import Any

from harness import open_harness
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.session import Session


def started_session() -> Session:
    return Session.begin(
        session_id="s-0000000a", name="work", spec=JobSpec(task="", agent=AgentKind.OPENCODE), persistent=False,
        conversation=Conversation("memory", "c1"), owner=User("u1", "alice"), agent_session_id="ours", at=1.0,
    )


def test_resumes_from_keeps_a_reported_id_and_ignores_an_empty_one() -> None:
    session = started_session()
    assert session.resumes_from("").agent_session_id == "ours"
    assert session.resumes_from("ours") is session
    assert session.resumes_from("ses_abc").agent_session_id == "ses_abc"


async def test_the_next_message_of_a_session_resumes_the_reported_conversation() -> None:
    async with open_harness() as h:
        await h.say("/od-start work --agent opencode")
        await h.say("/od-send work first")
        first = await h.sidecar()
        ours = first.request.env["AGENT_SESSION_ID"]
        body: dict[str, Any] = {"jobId": first.job_id, "seq": 0, "lines": [], "events": [
            {"v": 1, "type": "init", "agent": "opencode", "sessionId": "ses_reported"},
            {"v": 1, "type": "result", "ok": True, "answer": "hi", "sessionId": "ses_reported"},
        ]}
        assert (await first.post("/webhooks/logs", body)).status_code == 200
        await first.status("completed", 0)
        await h.card(first.job_id)

        await h.say("/od-send work second")
        second = await h.sidecar()
        assert ours != "ses_reported"
        assert second.request.env["AGENT_SESSION_ID"] == "ses_reported"
        await second.status("completed", 0)
        await h.card(second.job_id)
