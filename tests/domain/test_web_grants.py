"""Grants to the web view, and the rules of what it shows: pure, no I/O."""

from __future__ import annotations

import datetime

import pytest

from opendispatch.domain.errors import UsageError
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.ownership import Ownership
from opendispatch.domain.tokens import TokenIssuer
from opendispatch.domain.web_grants import GrantIssuer, InvalidGrant, WebGrant
from opendispatch.domain.usage import usage_by
from opendispatch.domain.web_view import JobFilters, WebStep, day_of, fold_steps, may_view, merge_newest_first

KEY = b"k" * 32
ALICE = User("U1", "alice")
BOB = User("U2", "bob")
HERE = Conversation("slack", "C1", thread="1.2")
THERE = Conversation("slack", "C2")


def job(job_id: str, owner: User = ALICE, where: Conversation = HERE, at: float = 100.0) -> Job:
    return Job.queued(job_id, JobSpec(task="t", agent=AgentKind.SHELL), where, owner, at=at)


def test_a_grant_round_trips_and_binds_user_channel_job_and_expiry() -> None:
    issuer = GrantIssuer(KEY)
    grant = WebGrant(user=User("U1", "ålice ✓"), asked_in=Conversation("slack", "C1"), expires_at=2000, job_id="j-1")
    assert issuer.verify(issuer.issue(grant), now=1999.0) == grant


@pytest.mark.parametrize(
    "tamper",
    [
        lambda g: g[:-1] + ("A" if g[-1] != "A" else "B"),  # the MAC
        lambda g: g.replace("odw1.2000.", "odw1.9000.", 1),  # a later expiry
        lambda g: "odw2" + g[4:],
        lambda g: g + ".x",
        lambda g: "",
        lambda g: "odw1.²⁰⁰⁰.a.b",  # digits isdigit() takes and int() does not
        lambda g: "x" * 5000,
    ],
)
def test_a_tampered_grant_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    issuer = GrantIssuer(KEY)
    text = issuer.issue(WebGrant(user=ALICE, asked_in=HERE, expires_at=2000))
    with pytest.raises(InvalidGrant):
        issuer.verify(tamper(text), now=1000.0)


def test_a_changed_payload_is_refused_even_with_a_valid_looking_shape() -> None:
    issuer = GrantIssuer(KEY)
    mine = issuer.issue(WebGrant(user=ALICE, asked_in=HERE, expires_at=2000, job_id="j-1")).split(".")
    theirs = issuer.issue(WebGrant(user=BOB, asked_in=HERE, expires_at=2000, job_id="j-2")).split(".")
    with pytest.raises(InvalidGrant):
        issuer.verify(".".join([mine[0], mine[1], theirs[2], mine[3]]), now=1000.0)


def test_an_expired_grant_is_refused_and_another_keys_too() -> None:
    text = GrantIssuer(KEY).issue(WebGrant(user=ALICE, asked_in=HERE, expires_at=2000))
    with pytest.raises(InvalidGrant):
        GrantIssuer(KEY).verify(text, now=2000.0)
    with pytest.raises(InvalidGrant):
        GrantIssuer(b"o" * 32).verify(text, now=1000.0)


def test_a_job_token_is_never_a_grant_and_a_grant_never_a_job_token() -> None:
    token = TokenIssuer(KEY).issue("j-1", 2000)
    with pytest.raises(InvalidGrant):
        GrantIssuer(KEY).verify(token, now=1000.0)
    grant = GrantIssuer(KEY).issue(WebGrant(user=ALICE, asked_in=HERE, expires_at=2000, job_id="j-1"))
    with pytest.raises(Exception):
        TokenIssuer(KEY).verify(grant, "j-1", now=1000.0)


def test_who_may_view_follows_chats_ownership_rule() -> None:
    rules = Ownership(admins=frozenset({"U9"}))
    list_grant = WebGrant(user=ALICE, asked_in=Conversation("slack", "C1"), expires_at=1)
    assert may_view(list_grant, job("j-1"), rules)
    assert not may_view(list_grant, job("j-2", owner=BOB), rules)
    assert may_view(WebGrant(user=User("U9", "root"), asked_in=THERE, expires_at=1), job("j-2", owner=BOB), rules)
    channel_rules = Ownership(channel_members_may_read=True)
    assert may_view(list_grant, job("j-2", owner=BOB, where=HERE), channel_rules)
    assert not may_view(list_grant, job("j-3", owner=BOB, where=THERE), channel_rules)
    job_grant = WebGrant(user=ALICE, asked_in=HERE, expires_at=1, job_id="j-1")
    assert may_view(job_grant, job("j-1"), rules) and not may_view(job_grant, job("j-4"), rules)


def test_filters_parse_and_say_what_is_wrong() -> None:
    filters = JobFilters.parse({"status": "failed", "agent": "claude", "channel": "slack/C1", "since": "2026-12-01",
                                "until": "2026-12-02", "page": "3", "repo": " acme/api ", "user": ""})
    assert filters.status is JobState.FAILED and filters.agent is AgentKind.CLAUDE
    assert filters.channel == Conversation("slack", "C1") and filters.repo == "acme/api" and filters.user is None
    start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc).timestamp()
    assert filters.created_after == start and filters.created_before == start + 2 * 86400
    assert filters.offset == 100
    assert filters.query(page=4)["page"] == "4" and "user" not in filters.query()
    for bad, message in [
        ({"status": "nope"}, "status must be one of"),
        ({"agent": "gpt"}, "agent must be one of"),
        ({"channel": "C1"}, "platform/channel"),
        ({"since": "yesterday"}, "since must be a date"),
        ({"page": "0"}, "page must be"),
        ({"page": "٣"}, "page must be"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "since must not be after until"),
    ]:
        with pytest.raises(UsageError, match=message):
            JobFilters.parse(bad)


def test_steps_fold_running_into_finished_and_keep_failures() -> None:
    lines = ["hello", "▶ Bash: npm test", "✓ Bash: npm test", "▶ Edit: a.py", "✗ Edit: a.py — no such file", "✓ Read: b"]
    assert fold_steps(lines) == [
        WebStep("Bash: npm test", "ok"),
        WebStep("Edit: a.py", "failed"),
        WebStep("Read: b", "ok"),
    ]


def test_pages_merge_each_job_once_newest_first() -> None:
    a, b, c = job("j-a", at=1), job("j-b", at=2), job("j-c", at=3)
    assert merge_newest_first([[c, a], [c, b]], offset=0, limit=10) == [c, b, a]
    assert merge_newest_first([[c, a], [c, b]], offset=1, limit=1) == [b]


def test_usage_sums_per_day_in_order() -> None:
    day = 86400.0 * 20000
    bars = usage_by([job("j-1", at=day + 5), job("j-2", at=day + 10), job("j-3", at=day - 5)], day_of, order="label")
    assert [(bar.label, bar.jobs) for bar in bars] == [("2024-10-03", 1), ("2024-10-04", 2)]
