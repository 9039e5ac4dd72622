"""HTTP-interactions mode end to end: signed interaction in -> job -> thread, live edits, embed."""

from __future__ import annotations

import base64

import json

import trio
from nacl.signing import SigningKey

from discord_stack import open_discord_stack
from fakes.discord import EPHEMERAL, GUILD_ID, FakeDiscord
from opendispatch.adapters.discord.app_commands import COMMAND_NAMES
from opendispatch.adapters.local import LocalSprites


def live_messages(fake: FakeDiscord, thread: str) -> list[dict]:  # type: ignore[type-arg]
    return [m for m in fake.in_channel(thread) if m["content"].startswith("**Output of")]


def shown_lines(content: str) -> list[str]:
    """The output lines inside a live message's code block."""
    if "```" not in content:
        return []
    return content.split("```\n", 1)[1].rsplit("\n```", 1)[0].split("\n")


async def test_a_slash_command_runs_a_job_in_a_thread_with_live_edits_and_a_final_embed() -> None:
    async with open_discord_stack(defer_after_s=0) as s:
        assert [c["name"] for c in s.fake.commands[GUILD_ID]] == list(COMMAND_NAMES)
        with trio.fail_after(20):
            payload = await s.command("od-run", {"task": "run the tests", "repo": "owner/project", "agent": "shell"})
            record = s.fake.interactions[payload["id"]]
            accepted = await s.original(payload)
            assert record.response_type == 5  # deferred first, then filled in
            assert "queued: owner/project @ main · shell" in accepted["content"]
            assert not accepted["flags"] & EPHEMERAL

            sidecar = await s.sidecar()
            assert sidecar.request.env["TASK"] == "run the tests"
            await sidecar.status("running")
            await sidecar.logs(["collecting...", "3 passed"], seq=0)
            thread_id = accepted["id"]  # the job's thread is opened on the "started" message
            await s.fake.wait_for(lambda f: live_messages(f, thread_id))
            await sidecar.logs(["done"], seq=1)
            await sidecar.post(
                "/webhooks/artifacts",
                {"jobId": sidecar.job_id, "artifacts": [{"name": "PR #7", "url": "https://github.com/o/r/pull/7"}]},
            )
            await sidecar.status("completed", 0)
            card = await s.fake.wait_for(
                lambda f: next((m for m in f.in_channel(thread_id) if m["embeds"]), None)
            )

        thread = s.fake.thread_of(accepted["id"])
        assert thread is not None and thread["parent_id"] == s.channel and sidecar.job_id in thread["name"]
        [live] = live_messages(s.fake, thread_id)
        assert shown_lines(live["content"]) == ["collecting...", "3 passed", "done"]
        assert len(s.fake.versions[live["id"]]) >= 2  # edited in place, not re-posted
        assert live["components"] == []  # the Stop button goes once the job has ended
        embed = card["embeds"][0]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Status"] == "succeeded" and fields["Exit code"] == "0" and fields["Duration"].endswith("s")
        assert fields["Artifacts"] == "[PR #7](https://github.com/o/r/pull/7)"
        assert sidecar.job_id in embed["title"] and "done" in embed["description"]
        assert s.fake.late_responses == [] and s.fake.double_responses == []
        assert [m["id"] for m in s.fake.in_channel(thread_id)] == [live["id"], card["id"]]


async def test_bad_input_gets_an_ephemeral_error_answered_at_once() -> None:
    async with open_discord_stack() as s:
        with trio.fail_after(10):
            payload = await s.command("od-run", {"task": "x", "timeout": "forever"})
            answer = await s.original(payload)
        assert answer["flags"] & EPHEMERAL
        assert "Bad timeout" in answer["content"] and "Usage: /od-run" in answer["content"]
        assert s.fake.interactions[payload["id"]].response_type == 4
        assert len(s.running.dispatcher.runner.live_jobs) == 0


async def test_after_a_deferral_an_error_is_still_private_and_the_thinking_message_goes() -> None:
    async with open_discord_stack(defer_after_s=0) as s:
        with trio.fail_after(10):
            payload = await s.command("od-cancel", {"job": "nonsense"})
            record = s.fake.interactions[payload["id"]]
            private = await s.fake.wait_for(
                lambda f: next((m for m in f.in_channel(s.channel) if m["flags"] & EPHEMERAL and "Bad job id" in m["content"]), None)
            )
            await s.fake.wait_for(lambda f: record.original_id in f.deleted)
        assert record.response_type == 5 and private["id"] != record.original_id
        assert [m for m in s.fake.in_channel(s.channel) if not m["flags"] & EPHEMERAL] == []  # nothing public stays


async def test_signatures_are_verified_pings_answered_and_forgeries_refused() -> None:
    async with open_discord_stack() as s:
        ping = json.dumps({"id": "1", "type": 1, "application_id": "1", "token": "t", "version": 1}).encode()
        answer = await s.http.post("/discord/interactions", content=ping, headers=s.user.signed_headers(ping))
        assert answer.status_code == 200 and answer.json() == {"type": 1}
        assert answer.headers["content-type"].startswith("application/json")

        payload = s.fake.interaction_payload("od-help", channel_id=s.channel)
        forged = await s.user.post(payload, key=SigningKey.generate())
        assert forged.status_code == 401
        unsigned = await s.http.post("/discord/interactions", content=ping, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        body = json.dumps(payload).encode()
        tampered_headers = s.user.signed_headers(body)
        tampered = await s.http.post("/discord/interactions", content=body.replace(b"od-help", b"od-jobs"), headers=tampered_headers)
        assert tampered.status_code == 401
        assert s.fake.interactions[payload["id"]].response_type is None  # nothing was answered


async def test_a_shell_job_on_local_sprites_with_the_real_sidecar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sprites = LocalSprites(workspace_root=tmp_path / "workspaces", log_dir=tmp_path / "logs")
    async with open_discord_stack(sprites=sprites) as s:
        with trio.fail_after(30):
            payload = await s.command("od-run", {"task": "echo hello; echo 'from the sprite'; exit 3", "agent": "shell"})
            thread = (await s.original(payload))["id"]
            card = await s.fake.wait_for(lambda f: next((m for m in f.in_channel(thread) if m["embeds"]), None))
        fields = {f["name"]: f["value"] for f in card["embeds"][0]["fields"]}
        assert fields["Status"] == "failed" and fields["Exit code"] == "3"
        [live] = live_messages(s.fake, thread)  # posted once, even though the job ended mid-post
        assert shown_lines(live["content"])[-2:] == ["hello", "from the sprite"]


async def test_od_logs_raw_attaches_the_whole_transcript_as_a_file() -> None:
    async with open_discord_stack(defer_after_s=0) as s:
        with trio.fail_after(20):
            payload = await s.command("od-run", {"task": "work", "agent": "claude"})
            await s.original(payload)
            sidecar = await s.sidecar()
            transcript = [json.dumps({"type": "assistant", "n": n}) for n in range(300)]
            answer = await sidecar.post("/webhooks/transcript", {"jobId": sidecar.job_id, "part": 0, "lines": transcript})
            assert answer.status_code == 200
            await sidecar.status("completed", 0)
            await s.fake.wait_for(lambda f: any(m["embeds"] for m in f.messages.values()))
            await s.command("od-logs", {"job": sidecar.job_id, "raw": True})
            message_id = await s.fake.wait_for(lambda f: next(iter(f.files), None))
        files = s.fake.files[message_id]
        assert list(files) == [f"{sidecar.job_id}.transcript.jsonl"]
        assert files[f"{sidecar.job_id}.transcript.jsonl"].decode().splitlines() == transcript  # whole
        message = s.fake.messages[message_id]
        assert message["content"] == f"Raw agent transcript of {sidecar.job_id} (300 lines)"
        assert message["attachments"][0]["size"] == len(files[f"{sidecar.job_id}.transcript.jsonl"])


async def test_od_logs_artifact_attaches_the_kept_file() -> None:
    async with open_discord_stack(defer_after_s=0) as s:
        with trio.fail_after(20):
            payload = await s.command("od-run", {"task": "make report", "agent": "shell"})
            await s.original(payload)
            sidecar = await s.sidecar()
            content = bytes(range(256))  # binary: attached, not shown
            body = {"jobId": sidecar.job_id, "name": "dump", "path": "/w/dump.bin",
                    "content": base64.b64encode(content).decode()}
            assert (await sidecar.post("/webhooks/artifact-file", body)).status_code == 200
            await sidecar.status("completed", 0)
            card = await s.fake.wait_for(lambda f: next((m for m in f.messages.values() if m["embeds"]), None))
            await s.command("od-logs", {"job": sidecar.job_id, "artifact": "dump"})
            message_id = await s.fake.wait_for(lambda f: next(iter(f.files), None))
        fields = {f["name"]: f["value"] for f in card["embeds"][0]["fields"]}
        assert "artifact dump" in fields["Artifacts"].replace("\\", "")
        assert s.fake.files[message_id] == {"dump.bin": content}
        assert s.fake.messages[message_id]["content"] == f"Artifact 'dump' of {sidecar.job_id}"
