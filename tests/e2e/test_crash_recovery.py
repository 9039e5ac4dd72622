"""`opendispatch serve` killed with SIGKILL in the middle of a job, then started again.

The sprite (its own session) keeps running and spools while nobody listens; the restarted
dispatcher finds it, adopts its job, still accepts its token, stores every line exactly once
and in order, and shows the final card.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


from opendispatch.adapters.sqlite import open_sqlite_store
from serve_process import free_port, serve_process
from opendispatch.domain.job import JobState

LINES = 40


async def test_a_job_survives_sigkill_of_the_dispatcher(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEBHOOK_PORT": str(free_port()),
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
        "OPENDISPATCH_RETRY_MAX_S": "0.3",  # the sidecar retries quickly once the server is back
        "OPENDISPATCH_PASSTHROUGH_ENV": "OPENDISPATCH_RETRY_MAX_S",
    }
    task = f'for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.05; done'
    async with serve_process(env, tmp_path) as first:
        await first.wait_for(r"webhooks at http")
        await first.say(f"/od-run -a shell '{task}'")
        job_id = (await first.wait_for(r"Job (j-[0-9a-f]{8}) queued")).group(1).decode()
        await first.wait_for(r"│ line 3\b")
        await first.stop(signal.SIGKILL)

    async with serve_process(env, tmp_path) as second:
        await second.wait_for(rf"✅ Job {job_id} succeeded · exit code 0", timeout=60)
        assert await second.stop(signal.SIGTERM) == 0

    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        assert await store.output(job_id) == [f"line {i}" for i in range(1, LINES + 1)]
        job = await store.get(job_id)
    assert job.state is JobState.SUCCEEDED
    assert "Traceback" not in second.text
