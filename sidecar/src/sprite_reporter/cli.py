"""The program: read the environment, then run one job or a persistent session's loop."""

import os
import tempfile
import uuid

from .approvals import load_approvals
from .config import ConfigError, Connection, Tuning, load_connection, load_run, load_tuning
from .credentials import load_git_credentials
from .job import Job
from .output import say
from .process import EXIT_CONFIG
from .relay import LAST_WORD_S, Relay
from .privileges import agent_identity
from .session import AgentConversation, SessionLoop

CONFIG_REPORT_S = 10.0  # how long a configuration error may try to reach the server


def report_config_error(connection: Connection, tuning: Tuning, error: ConfigError) -> None:
    """The job cannot run, but the server can still be told why (briefly, best effort)."""
    spool = os.path.join(tempfile.gettempdir(), f"opendispatch-spool-{os.getpid()}.jsonl")
    relay = Relay(connection, tuning, spool)
    relay.start(None)
    relay.hurry(CONFIG_REPORT_S)
    final = {"jobId": connection.job_id, "status": "failed", "exitCode": EXIT_CONFIG, "error": str(error)}
    final["stage"] = "sidecar"
    relay.finish([], final)
    relay.wait_done(CONFIG_REPORT_S + LAST_WORD_S + tuning.http_timeout_s)
    try:
        os.unlink(spool)
    except OSError:
        pass


def main() -> int:
    env = dict(os.environ)
    mode = env.get("OPENDISPATCH_SESSION_MODE", "").strip().lower()
    if mode == "persistent":
        try:
            loop = SessionLoop(env)
        except ConfigError as error:
            say(str(error))
            return EXIT_CONFIG
        return loop.run()
    try:
        connection = load_connection(env)
    except ConfigError as error:
        say(str(error))
        return EXIT_CONFIG
    try:
        tuning = load_tuning(env)
        plan = load_run(env)
        credentials = load_git_credentials(env, plan.workspace, tuning.http_timeout_s)
        approvals = load_approvals(env, plan.workspace, tuning.http_timeout_s)
    except ConfigError as error:
        say(str(error))
        report_config_error(connection, Tuning(), error)
        return EXIT_CONFIG
    job = Job(connection, tuning, plan, env)
    job.identity = agent_identity(env)
    job.credentials = credentials
    job.approvals = approvals
    if mode == "handover":
        agent = env.get("AGENT", "").strip().lower()
        conversation_id = env.get("AGENT_SESSION_ID", "").strip() or str(uuid.uuid4())
        home = job.identity.home_in(env, plan.workspace)
        job.conversation = AgentConversation(
            agent, env.get("TASK", ""), conversation_id, home, handover=connection, owner=job.identity
        )
    return job.run()
