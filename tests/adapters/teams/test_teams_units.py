"""The pure parts of the Teams adapter: reading activities, rendering cards, settings, package."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from fakes.teams import ALICE, BOT_ID, CHANNEL, FakeTeamsCloud
from opendispatch.adapters.teams.activity import (
    BadActivity,
    card_command,
    clean_text,
    conversation_id,
    parse_activity,
    split_conversation_id,
    stop_request,
)
from opendispatch.adapters.teams.cards import render_activities
from opendispatch.adapters.teams.package import MANIFEST_DIR, PackageError, build_package, main
from opendispatch.adapters.teams.settings import TeamsSettings
from opendispatch.domain.commands import CancelJob, ParseSettings, RunJob, parse_command
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.job import Artifact, Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobCard, JobTable, LiveOutput, Notice

APP_ID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
PARSE = ParseSettings(images={}, default_agent=AgentKind.SHELL, default_image=None)


def test_a_channel_mention_becomes_the_same_command_as_a_slash_command() -> None:
    cloud = FakeTeamsCloud()
    activity = parse_activity(cloud.message_activity('od-run --repo acme/api -a shell "fix tests"'))
    assert activity.text == 'od-run --repo acme/api -a shell "fix tests"'
    assert activity.conversation == Conversation("teams", CHANNEL, "1632474000000")
    assert activity.user == User(ALICE["aadObjectId"], "Alice Adams")
    command = parse_command(activity.text, PARSE)
    assert command == parse_command('/od-run --repo acme/api -a shell "fix tests"', PARSE)
    assert isinstance(command, RunJob) and command.spec.task == "fix tests"


def test_mentions_nbsp_and_typographic_quotes_are_cleaned() -> None:
    entities = [{"type": "mention", "mentioned": {"id": BOT_ID, "name": "Open Dispatch"}, "text": "<at>Open Dispatch</at>"}]
    text = "<at>Open Dispatch</at>&nbsp;/od-run -a shell \u201cdon\u2019t panic\u201d"
    assert clean_text(text, entities, BOT_ID) == 'od-run -a shell "don\u2019t panic"'.replace("od-run", "/od-run", 1)
    # another user's mention stays; a leading tag without entities goes
    assert clean_text("<at>Bot</at> od-jobs", None, BOT_ID) == "od-jobs"
    assert clean_text("od-logs j-1a2b3c4d ask <at>Bob</at>", entities, BOT_ID) == "od-logs j-1a2b3c4d ask <at>Bob</at>"


def test_fields_of_the_wrong_type_read_as_absent_rather_than_refusing_the_activity() -> None:
    cloud = FakeTeamsCloud()
    body = cloud.message_activity("od-jobs")
    odd = {
        **body,
        "id": 7,
        "text": None,
        "channelId": ["msteams"],
        "conversation": {**body["conversation"], "conversationType": 3, "isGroup": "yes"},
        "from": {"id": "29:1", "aadObjectId": 5, "name": ""},
        "entities": "mention",
        "value": [1],
    }
    activity = parse_activity(odd)
    assert (activity.id, activity.text, activity.channel_id, activity.value) == (None, "", "", [1])
    assert (activity.conversation_type, activity.is_group) == (None, None)
    assert activity.user == User("29:1", "29:1")
    assert parse_activity({**body, "from": "alice", "recipient": None}).user is None
    mentions = [None, {"type": "mention", "mentioned": [], "text": "<at>Open Dispatch</at>"}, {"type": "mention", "mentioned": {"id": BOT_ID}, "text": 1}]
    assert clean_text("<at>Open Dispatch</at> od-jobs", mentions, BOT_ID) == "od-jobs"  # the leading tag still goes
    assert card_command({"action": 1, "jobId": "j-1a2b3c4d"}) is None and card_command({"action": "od_deny", "requestId": 1}) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": ""}, "type is missing"),
        ({"type": 1}, "type is missing"),
        ({"serviceUrl": None}, "serviceUrl is missing"),
        ({"conversation": {"id": 19}}, "conversation.id is missing"),
        ({"conversation": "19:x"}, "conversation.id is missing"),
    ],
)
def test_an_activity_without_what_every_activity_has_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(BadActivity, match=f"^{message}$"):
        parse_activity({**FakeTeamsCloud().message_activity("od-jobs"), **change})
    with pytest.raises(BadActivity, match="^the body must be a JSON object$"):
        parse_activity(["type", "message"])


def test_thread_ids_split_and_join() -> None:
    full = f"{CHANNEL};messageid=1632474000000"
    assert split_conversation_id(full) == (CHANNEL, "1632474000000")
    assert split_conversation_id("a:personal") == ("a:personal", None)
    assert conversation_id(Conversation("teams", CHANNEL, "1632474000000")) == full


def test_only_a_well_formed_stop_press_names_a_job() -> None:
    assert stop_request({"action": "od_stop", "jobId": "j-1a2b3c4d"}) == "j-1a2b3c4d"
    assert isinstance(parse_command("/od-cancel j-1a2b3c4d", PARSE), CancelJob)
    assert stop_request({"action": "od_stop", "jobId": "j-1; rm -rf"}) is None
    assert stop_request({"action": "other", "jobId": "j-1a2b3c4d"}) is None
    assert stop_request("od_stop") is None


def _running_job() -> Job:
    spec = JobSpec(repo="acme/api", task="fix", agent=AgentKind.SHELL)
    job = Job.queued("j-1a2b3c4d", spec, Conversation("teams", CHANNEL), User("u", "Alice"), at=0.0)
    return job.starting(at=1.0).running()


def test_card_activities_carry_no_text_and_fall_back_to_render_text() -> None:
    job = _running_job()
    [live] = render_activities(LiveOutput(job=job, page=0, lines=("*not bold*",), omitted=0, elapsed_s=3, sealed=False))
    assert "text" not in live
    card = live["attachments"][0]["content"]
    assert card["version"] == "1.5" and card["fallbackText"].startswith("Output of j-1a2b3c4d")
    assert {"type": "TextRun", "text": "*not bold*", "fontType": "Monospace"} in card["body"][-1]["inlines"]
    ended = job.with_artifacts((Artifact("log", "file:///etc/passwd"),)).succeeded(at=62.0)
    [final] = render_activities(JobCard(job=ended, tail=(), total_lines=0, duration_s=61))
    content = final["attachments"][0]["content"]
    assert "actions" not in content  # only http(s) links become buttons
    facts = {f["title"]: f["value"] for f in content["body"][1]["facts"]}
    assert facts["Status"] == "succeeded" and facts["Exit code"] == "0" and facts["Duration"] == "1m1s"
    assert content["body"][0]["color"] == "good"


def test_long_text_is_split_and_tables_are_code_blocks() -> None:
    [table] = render_activities(JobTable(title="Recent jobs", jobs=(), now=0.0))
    assert table["text"].startswith("**Recent jobs**\n\n```") and table["textFormat"] == "markdown"
    pieces = render_activities(Notice("\n".join(f"line {n} " + "x" * 100 for n in range(400))))
    assert len(pieces) >= 2 and all(len(p["text"]) <= 20_000 for p in pieces)


def test_settings_come_from_the_environment_and_name_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="TEAMS_APP_ID"):
        TeamsSettings.from_env({})
    with pytest.raises(ConfigError, match="TEAMS_APP_PASSWORD"):
        TeamsSettings.from_env({"TEAMS_APP_ID": APP_ID})
    settings = TeamsSettings.from_env({"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": "s3cret-value", "TEAMS_TENANT_ID": "t-1"})
    assert settings.token_url == "https://login.microsoftonline.com/t-1/oauth2/v2.0/token"
    assert settings.openid_metadata_url == "https://login.botframework.com/v1/.well-known/openidconfiguration"
    assert "s3cret-value" not in repr(settings)
    legacy = TeamsSettings.from_env({"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": "x"})
    assert legacy.token_url == "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
    with pytest.raises(ConfigError, match="TEAMS_EDIT_INTERVAL_S"):
        TeamsSettings.from_env({"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": "x", "TEAMS_EDIT_INTERVAL_S": "soon"})


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_package_holds_the_manifest_with_our_app_id_and_both_icons(tmp_path: Path) -> None:
    out = build_package(tmp_path / "open-dispatch.zip", APP_ID)
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        assert _png_size(archive.read("color.png")) == (192, 192)
        assert _png_size(archive.read("outline.png")) == (32, 32)
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    titles = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
    assert titles[0] == "od-run" and len(titles) <= 10 and all(t.startswith("od-") for t in titles)
    assert "{{" not in json.dumps(manifest)


def test_the_package_command_refuses_a_bad_app_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PackageError, match="GUID"):
        build_package(tmp_path / "x.zip", "my-bot")
    assert main([str(tmp_path / "x.zip"), "my-bot"]) == 1
    assert main([]) == 2
    assert main([str(tmp_path / "ok.zip"), APP_ID]) == 0 and (tmp_path / "ok.zip").is_file()
    assert "Upload an app" in capsys.readouterr().out
    assert (MANIFEST_DIR / "manifest.json").is_file()
