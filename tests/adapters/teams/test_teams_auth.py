"""Only activities signed by the Bot Framework, for us, about their own serviceUrl, get in."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from fakes.teams import APP_ID
from teams_rig import TeamsRig, open_rig


def forged(rig: TeamsRig) -> str:
    return rig.cloud.sign(key=rig.cloud.rogue)  # same kid as the published key, other private key


REFUSED: dict[str, Any] = {
    "forged signature": forged,
    "expired beyond the 5 min leeway": lambda rig: rig.cloud.sign(exp=int(time.time()) - 600),
    "not yet valid": lambda rig: rig.cloud.sign(nbf=int(time.time()) + 900),
    "wrong audience": lambda rig: rig.cloud.sign(aud="00000000-0000-0000-0000-000000000000"),
    "no audience": lambda rig: rig.cloud.sign(aud=None),
    "wrong issuer": lambda rig: rig.cloud.sign(iss="https://sts.windows.net/evil/"),
    "serviceUrl mismatch": lambda rig: rig.cloud.sign(serviceurl="https://attacker.example/amer/"),
    "no serviceurl claim": lambda rig: rig.cloud.sign(serviceurl=None),
    "key not endorsed for msteams": lambda rig: rig.cloud.sign(key=rig.cloud.unendorsed),
    "unknown key id": lambda rig: jwt.encode(
        {"iss": "https://api.botframework.com", "aud": APP_ID, "exp": int(time.time()) + 600, "serviceurl": rig.cloud.service_url},
        rig.cloud.rogue.private, algorithm="RS256", headers={"kid": "never-published"},
    ),
    "HS256 with the public key as secret": lambda rig: jwt.encode(
        {"iss": "https://api.botframework.com", "aud": APP_ID, "exp": int(time.time()) + 600}, "x" * 32,
        algorithm="HS256", headers={"kid": rig.cloud.key.kid},
    ),
    "unsigned": lambda rig: jwt.encode(
        {"iss": "https://api.botframework.com", "aud": APP_ID, "exp": int(time.time()) + 600}, None, algorithm="none"
    ),
    "garbage": lambda rig: "not.a.jwt",
    "no Authorization header": lambda rig: None,
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_bad_tokens_get_401_and_start_nothing(case: str) -> None:
    async with open_rig() as rig:
        activity = rig.cloud.message_activity('od-run -a shell "rm -rf /"')
        response = await rig.deliver(activity, token=REFUSED[case](rig))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        # nothing changed: no job, no sprite, no reply, the conversation is not even remembered
        assert await rig.store.recent(limit=10) == []
        assert rig.sprites.spawned == []  # type: ignore[attr-defined]
        assert rig.cloud.calls == [] and rig.cloud.token_requests == 0
        assert rig.chat._service_urls == {}


async def test_a_valid_token_with_a_body_claiming_another_service_url_is_refused() -> None:
    async with open_rig() as rig:
        activity = rig.cloud.message_activity('od-run -a shell "x"')
        activity["serviceUrl"] = "https://attacker.example/amer/"
        assert (await rig.deliver(activity)).status_code == 401
        assert await rig.store.recent(limit=10) == []


async def test_a_token_within_the_leeway_is_accepted_and_keys_are_fetched_once() -> None:
    async with open_rig() as rig:
        await rig.deliver(rig.cloud.message_activity("od-help"), token=rig.cloud.sign(exp=int(time.time()) - 60))
        await rig.wait_for_text("od-run")
        await rig.say("od-help")
        assert rig.cloud.metadata_requests == 1


async def test_a_malformed_body_with_a_good_token_is_a_400() -> None:
    async with open_rig() as rig:
        response = await rig.deliver({"type": "message"})
        assert response.status_code == 400
        assert "serviceUrl" in response.json()["error"]


async def test_a_rotated_key_is_fetched_when_a_token_names_it() -> None:
    from fakes.teams import new_key

    async with open_rig(key_refetch_min_interval_s=0.0) as rig:
        await rig.say("od-help")
        rig.cloud.key = new_key("key-rotated", ["msteams"], role="rotated")
        await rig.say("od-help")
        assert rig.cloud.metadata_requests == 2


async def test_other_activity_types_are_acknowledged_and_ignored() -> None:
    async with open_rig() as rig:
        update = rig.cloud.message_activity("")
        update.update(type="conversationUpdate", membersAdded=[{"id": "28:bot"}])
        assert (await rig.deliver(update)).status_code == 202
        typing = dict(update, type="typing")
        assert (await rig.deliver(typing)).status_code == 202
        await rig.say("od-help")
        await rig.wait_for_text("od-run")
        assert len(rig.cloud.order) == 1  # only the answer to od-help


async def test_refusals_are_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    async with open_rig() as rig:
        token = rig.cloud.sign(iss="https://sts.windows.net/evil/")
        with caplog.at_level("INFO"):
            await rig.deliver(rig.cloud.message_activity("od-help"), token=token)
        assert "https://sts.windows.net/evil/" in caplog.text
        assert token not in caplog.text and token.split(".")[2] not in caplog.text
