"""Pure parts of the Discord adapter: command text, message parts, settings, signatures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from opendispatch.adapters.discord.app_commands import COMMAND_NAMES, application_commands, command_text
from opendispatch.adapters.discord.interactions import BadInteraction, parse_interaction, signature_checker, verify_signature
from opendispatch.adapters.discord.payloads import MAX_CONTENT, message_parts
from opendispatch.adapters.discord.rest import redact_path, route_key
from opendispatch.adapters.discord.settings import DiscordSettings
from opendispatch.domain.commands import USAGE, CancelJob, ListJobs, ParseSettings, RunJob, ShowLogs, parse_command
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import LiveOutput, Notice

SETTINGS = ParseSettings()


def options(**values: object) -> dict[str, object]:
    return {"options": [{"name": k, "type": 3, "value": v} for k, v in values.items()]}


def test_every_command_of_the_grammar_is_registered_with_valid_shapes() -> None:
    commands = application_commands()
    assert {c["name"] for c in commands} == set(USAGE) == set(COMMAND_NAMES)
    run = next(c for c in commands if c["name"] == "od-run")
    by_name = {o["name"]: o for o in run["options"]}
    assert set(by_name) == {"task", "repo", "branch", "image", "agent", "max-cost", "model", "timeout"}
    assert [c["value"] for c in by_name["agent"]["choices"]] == [k.value for k in AgentKind]
    for command in commands:
        assert 1 <= len(command["description"]) <= 100
        required = [bool(o.get("required")) for o in command.get("options", [])]
        assert required == sorted(required, reverse=True)  # required options come first


@given(task=st.text(min_size=1).filter(str.strip), branch=st.sampled_from(["main", "dev", "feature/x-1"]))
def test_run_options_become_text_the_domain_parser_reads_back_exactly(task: str, branch: str) -> None:
    text = command_text({"name": "od-run", **options(task=task, repo="acme/api", branch=branch, agent="shell", timeout="90s")})
    command = parse_command(text, SETTINGS)
    assert isinstance(command, RunJob)
    assert command.spec.task == task and command.spec.repo == "acme/api" and command.spec.branch == branch
    assert command.spec.agent is AgentKind.SHELL and command.spec.timeout_s == 90


def test_od_config_options_become_the_commands_text() -> None:
    from opendispatch.domain.commands import SetChannelSetting, ShowChannelSettings, UnsetChannelSetting

    assert parse_command(command_text({"name": "od-config"}), SETTINGS) == ShowChannelSettings()
    set_repo = {"name": "od-config", **options(action="set", key="repo", value="acme/api")}
    assert parse_command(command_text(set_repo), SETTINGS) == SetChannelSetting("repo", "acme/api")
    unset = {"name": "od-config", **options(action="unset", key="model")}
    assert parse_command(command_text(unset), SETTINGS) == UnsetChannelSetting("model")
    run = {"name": "od-run", **options(task="x", model="claude-sonnet-4-5")}
    command = parse_command(command_text(run), SETTINGS)
    assert isinstance(command, RunJob) and command.spec.model == "claude-sonnet-4-5"


def test_other_commands_and_option_lookalikes() -> None:
    assert parse_command(command_text({"name": "od-cancel", **options(job="j-1a2b3c4d")}), SETTINGS) == CancelJob("j-1a2b3c4d")
    logs = {"name": "od-logs", "options": [{"name": "job", "type": 3, "value": "j-1a2b3c4d"}, {"name": "tail", "type": 4, "value": 5}]}
    assert parse_command(command_text(logs), SETTINGS) == ShowLogs("j-1a2b3c4d", 5)
    jobs = {"name": "od-jobs", "options": [{"name": "all", "type": 5, "value": True}, {"name": "status", "type": 3, "value": "failed"}]}
    assert parse_command(command_text(jobs), SETTINGS) == ListJobs(all=True, status=JobState.FAILED)
    sneaky = parse_command(command_text({"name": "od-run", **options(task="--repo evil/x -v")}), SETTINGS)
    assert isinstance(sneaky, RunJob) and sneaky.spec.task == "--repo evil/x -v" and sneaky.spec.repo is None


def _job() -> Job:
    spec = JobSpec(task="t", agent=AgentKind.SHELL, repo=None, branch="main", image=None, timeout_s=60)
    return Job.queued("j-1a2b3c4d", spec, Conversation("discord", "1"), User("1", "alice"), at=0.0)


def test_long_messages_are_split_under_2000_characters_without_breaking_code_blocks() -> None:
    lines = tuple(f"{n:04d} " + "x" * 90 for n in range(60))
    parts = message_parts(LiveOutput(job=_job(), page=0, lines=lines, omitted=0, elapsed_s=3, sealed=False))
    assert len(parts) > 1 and all(len(p["content"]) <= MAX_CONTENT for p in parts)
    assert all(p["content"].count("```") % 2 == 0 for p in parts)
    shown = [line for p in parts for line in p["content"].split("\n") if line.startswith(("0", "1", "2", "3", "4", "5"))]
    assert shown == list(lines)
    assert parts[-1]["components"][0]["components"][0]["custom_id"] == "od_stop:j-1a2b3c4d"
    assert all(p["components"] == [] for p in parts[:-1])
    fence = message_parts(LiveOutput(job=_job(), page=0, lines=("```", "ok"), omitted=0, elapsed_s=1, sealed=True))
    assert fence[0]["content"].count("```") == 2 and fence[0]["components"] == []
    assert all(p["allowed_mentions"] == {"parse": []} for p in message_parts(Notice("@everyone " * 400)))


def test_settings_name_the_variable_to_fix() -> None:
    env = {"DISCORD_BOT_TOKEN": "t0k", "DISCORD_CLIENT_ID": "123"}
    settings = DiscordSettings.from_env(env)
    assert settings.mode == "gateway" and settings.guild_id is None and "t0k" not in repr(settings)
    key = SigningKey.generate().verify_key.encode().hex()
    assert DiscordSettings.from_env({**env, "DISCORD_PUBLIC_KEY": key, "DISCORD_GUILD_ID": "9"}).mode == "http"
    for broken, variable in [
        ({"DISCORD_CLIENT_ID": "123"}, "DISCORD_BOT_TOKEN"),
        ({**env, "DISCORD_CLIENT_ID": "my-app"}, "DISCORD_CLIENT_ID"),
        ({**env, "DISCORD_PUBLIC_KEY": "nothex"}, "DISCORD_PUBLIC_KEY"),
        ({**env, "DISCORD_GUILD_ID": "general"}, "DISCORD_GUILD_ID"),
        ({**env, "DISCORD_INTERACTIONS": "http"}, "DISCORD_PUBLIC_KEY"),
    ]:
        with pytest.raises(ConfigError, match=variable):
            DiscordSettings.from_env(broken)


def test_signatures_cover_timestamp_and_body() -> None:
    signing = SigningKey.generate()
    key = signature_checker(signing.verify_key.encode().hex())
    body = b'{"type":1}'
    good = {"x-signature-timestamp": "1700000000", "x-signature-ed25519": signing.sign(b"1700000000" + body).signature.hex()}
    assert verify_signature(key, good, body)
    assert not verify_signature(key, {**good, "x-signature-timestamp": "1700000001"}, body)
    assert not verify_signature(key, good, body + b" ")
    assert not verify_signature(key, {**good, "x-signature-ed25519": "zz"}, body)
    assert not verify_signature(key, {}, body)


def test_interactions_parse_to_a_user_a_channel_and_a_command_line() -> None:
    raw = {
        "id": "5", "application_id": "7", "type": 2, "token": "secret-token", "channel_id": "42",
        "member": {"user": {"id": "9", "username": "mason", "global_name": "Mason"}, "nick": None},
        "data": {"name": "od-help", "options": [{"name": "command", "type": 3, "value": "od-run"}]},
    }
    event = parse_interaction(raw)
    assert event.conversation == Conversation("discord", "42") and event.user == User("9", "Mason")
    assert event.text == "/od-help od-run" and "secret-token" not in repr(event)
    button = parse_interaction({**raw, "type": 3, "data": {"custom_id": "od_stop:j-1a2b3c4d", "component_type": 2}})
    assert button.text == "/od-cancel j-1a2b3c4d"
    assert parse_interaction({**raw, "type": 3, "data": {"custom_id": "other"}}).text is None


def test_interactions_in_threads_and_dms_and_nested_options() -> None:
    base = {"id": "5", "application_id": "7", "type": 2, "token": "t", "data": {"name": "od-list", "options": None}}
    in_thread = parse_interaction({**base, "channel": {"id": "99", "type": 11, "parent_id": "42"}, "member": {"user": {"id": "9", "username": "mason"}, "nick": "Mace"}})
    assert in_thread.conversation == Conversation("discord", "42", thread="42:99") and in_thread.user == User("9", "Mace")
    in_dm = parse_interaction({**base, "channel_id": "8", "user": {"id": "9", "username": "mason", "global_name": None}})
    assert in_dm.conversation == Conversation("discord", "8") and in_dm.user == User("9", "mason") and in_dm.text == "/od-list"
    assert parse_interaction({**base, "type": 4, "channel_id": "8", "user": {"id": "9"}, "data": None}).text is None
    nested = {"name": "od-logs", "options": [{"name": "sub", "type": 1, "options": [{"name": "job", "type": 3, "value": "j-1a2b3c4d"}, {"name": "raw", "type": 5, "value": True}]}]}
    assert command_text(nested) == "/od-logs j-1a2b3c4d --raw"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": None}, "token must be a string"),
        ({"type": "2"}, "type must be an integer"),
        ({"channel_id": None}, "channel_id must be a string when channel.id is absent"),
        ({"member": {"user": {"id": 9}}}, "member.user.id must be a string"),
        ({"member": None}, "user must be a user object when member.user is absent"),
        ({"data": {"name": "od-help", "options": [{"name": "command", "type": 3, "value": {}}]}}, "data.options[0].value must be a string, a number, or true or false"),
        ({"data": {"name": "od-help", "options": [{"type": 3, "value": "x"}]}}, "data.options[0].name must be a string"),
        ({"data": ["od-help"]}, "data must be an application command's data (name, options)"),
        ({"type": 3, "data": {"custom_id": 1}}, "data.custom_id must be a string"),
    ],
)
def test_an_interaction_we_cannot_read_is_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    raw = {
        "id": "5", "application_id": "7", "type": 2, "token": "secret-token", "channel_id": "42",
        "member": {"user": {"id": "9", "username": "mason"}}, "data": {"name": "od-help"},
    }
    with pytest.raises(BadInteraction) as refused:
        parse_interaction({**raw, **change})
    assert str(refused.value) == f"not an interaction we can answer: {message}"
    assert "secret-token" not in str(refused.value)


def test_rate_limit_keys_and_logs_keep_tokens_out() -> None:
    assert route_key("PATCH", "/channels/1/messages/2") == route_key("PATCH", "/channels/1/messages/3")
    assert route_key("PATCH", "/channels/1/messages/2") != route_key("PATCH", "/channels/9/messages/2")
    assert "tok" not in redact_path("https://d/api/v10/webhooks/7/tok/messages/@original")
    assert "tok" not in redact_path("/interactions/5/tok/callback?with_response=true")


def test_a_gateway_message_of_odd_shapes_is_read_or_skipped_never_raises() -> None:
    from opendispatch.adapters.discord.messages import parse_message

    person = {"id": "7", "username": "ann"}
    base = {"channel_id": "c1", "guild_id": "g1", "type": 0, "content": "<@42> run", "author": person}
    assert parse_message({**base, "mentions": 5}, "42") is not None  # mentions not a list: no mentions read
    assert parse_message({**base, "author": "ann"}, "42") is None  # no author object: not a person's message
    assert parse_message({**base, "type": "0"}, "42") is None  # not a type a person writes
    odd = parse_message({**base, "member": [], "channel_type": True, "author": {**person, "global_name": 3}}, "42")
    assert odd is not None and odd.user.name == "ann" and odd.channel_type is None and odd.addressed
