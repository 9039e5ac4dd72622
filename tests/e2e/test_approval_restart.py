"""A dispatcher killed (SIGKILL) while the real Claude Code CLI waits for an approval, then
started again (issue #22): the request is stored, posted again, answered at the console, and
the job goes on and succeeds. The sidecar's broker keeps asking while nobody listens.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from modelserver.cli_runs import agent_environment
from modelserver.server import ScenarioServer
from real_agents import make_repo
from serve_process import free_port, serve_process


async def test_a_waiting_approval_survives_a_sigkill_of_the_dispatcher(tmp_path: Path, agent_cli_bin: Path) -> None:
    model = ScenarioServer("approvals").start()
    try:
        repo = make_repo(tmp_path)
        passthrough = agent_environment(model.url)
        env = {
            "PATH": os.pathsep.join([str(agent_cli_bin), os.environ["PATH"]]),
            "HOME": str(tmp_path),
            "WEBHOOK_PORT": str(free_port()),
            "OPENDISPATCH_DB": str(tmp_path / "db" / "jobs.db"),  # its folder is hidden from sprites
            "OPENDISPATCH_SANDBOX_READ_ONLY": str(repo),
            "OPENDISPATCH_ADMIN_USERS": "console",
            "OPENDISPATCH_SANDBOX_ALLOW": model.url.removeprefix("http://").rstrip("/"),
            **passthrough,
            "OPENDISPATCH_PASSTHROUGH_ENV": ",".join(passthrough),
        }
        async with serve_process(env, tmp_path) as first:
            await first.wait_for(r"webhooks at http")
            await first.say("/od-config set approvals ask Bash(echo*)")
            await first.wait_for(r"approvals is now ask Bash\(echo\*\)")
            await first.say(f'/od-run --repo {repo} -a claude "run the markers"')
            job_id = (await first.wait_for(r"Job (j-[0-9a-f]{8}) queued")).group(1).decode()
            asked = await first.wait_for(r"asks to run Bash: echo approval-demo-ran", timeout=60)
            request_id = (await first.wait_for(r"(a-[0-9a-f]{8})")).group(1).decode()
            assert asked
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

        async with serve_process(env, tmp_path) as second:
            await second.wait_for(r"asks to run Bash: echo approval-demo-ran", timeout=60)  # posted again
            await second.wait_for(rf"/od-approve {request_id}")
            await second.say(f"/od-approve {request_id}")
            await second.wait_for(rf"approved by you \({request_id}\)")
            await second.wait_for(rf"✅ Job {job_id} succeeded", timeout=90)
            await second.stop(signal.SIGTERM)
        tool_results = "\n".join(str(r.body) for r in model.main_requests())
        assert "approval-demo-ran" in tool_results.replace("echo approval-demo-ran", "")
    finally:
        model.stop()
