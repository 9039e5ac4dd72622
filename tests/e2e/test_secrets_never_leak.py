"""An agent that prints every secret it can reach, including its own job token (read from the
sidecar's /proc environ): none of it may reach chat, the job store, or the server's logs."""

from __future__ import annotations

import io
import shlex
import logging
from pathlib import Path

import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, JobState, User
from opendispatch.domain.messages import Inbound, JobCard
from opendispatch.domain.redaction import Redactor
from opendispatch.logs import configure_logging

GH_TOKEN = "ghp_LeakMeIfYouCan0123456789"
ANTHROPIC_KEY = "sk-ant-api03-verysecretkey"
LEAKY_AGENT = (
    'echo "gh=$GH_TOKEN"; echo "key=$ANTHROPIC_API_KEY"; '
    "tr '\\0' '\\n' < /proc/$PPID/environ | grep -a '^JOB_TOKEN='; "
    'echo "done"; exit 3'
)


async def test_secrets_and_the_job_token_reach_neither_chat_nor_store_nor_logs(tmp_path: Path) -> None:
    config = Config.from_env(
        {"GH_TOKEN": GH_TOKEN, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENDISPATCH_DB": str(tmp_path / "jobs.db")},
        dotenv=None,
    )
    log_stream = io.StringIO()
    handler = configure_logging(
        verbose=True, redactor=Redactor.of(config.secret_values), stream=log_stream, json_lines=True
    )
    logging.getLogger().setLevel(logging.DEBUG)
    chat = MemoryChat()
    # Unsandboxed on purpose: the point is redaction of what an agent *can* read and print
    # (in the sandbox it cannot read the sidecar's environ at all: tests/e2e/test_sandbox.py).
    sprites = LocalSprites(workspace_root=tmp_path / "sprites", sandbox=False)
    try:
        with trio.fail_after(60):
            async with open_sqlite_store(tmp_path / "jobs.db") as store:
                async with open_dispatcher(config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0") as od:
                    await od.dispatcher.handle(
                        Inbound(Conversation("memory", "c1"), User("u1", "alice"), f"/od-run -a shell -- {shlex.quote(LEAKY_AGENT)}")
                    )
                    card = await chat.wait_for(lambda m: isinstance(m, JobCard))
                    assert isinstance(card, JobCard)
                    stored = await store.output(card.job.id)
                    job = await store.get(card.job.id)
    finally:
        logging.getLogger().removeHandler(handler)
    assert job.state is JobState.FAILED and job.exit_code == 3
    assert stored[-1] == "done" and any(line.startswith("JOB_TOKEN=") for line in stored), stored
    everything = "\n".join([chat.transcript(), *stored, log_stream.getvalue(), repr(job)])
    assert GH_TOKEN not in everything and ANTHROPIC_KEY not in everything
    assert "odj1." not in everything  # no job token, whole or in its recognisable form
    assert log_stream.getvalue()  # the server did log (at DEBUG) while the job ran
