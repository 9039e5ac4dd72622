"""What a new user runs: the demo command, and the README's embedding example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPENDISPATCH = Path(sys.executable).with_name("opendispatch")


def test_the_demo_prints_a_succeeded_and_a_failed_job_and_exits_0_with_stdin_closed(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(OPENDISPATCH), "demo"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin:" + str(OPENDISPATCH.parent), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"✅ Job j-[0-9a-f]{8} succeeded · exit code 0", out)
    assert re.search(r"❌ Job j-[0-9a-f]{8} failed · exit code 1", out)
    assert "Failed at agent exit" in out
    # the test report outlives the sprite's workspace (issue #27)
    assert re.search(r"test report \(9 B\): /od-logs j-[0-9a-f]{8} --artifact 'test report'", out)
    assert "4 passed, 0 failed" in out and "3 passed, 1 failed" in out
    assert "Recent jobs of demo" in out
    # The web view's dashboard link, and each job's View live link (issue #23).
    assert re.search(r"Dashboard \(.*\): http://127\.0\.0\.1:\d+/jobs\?grant=odw1\.\d+\.", out)
    assert re.search(r"View live: http://127\.0\.0\.1:\d+/jobs/j-[0-9a-f]{8}\?grant=odw1\.", out)
    assert "Session demo-session started" in out and "the session kept last-run.txt:" in out
    assert "Session demo-session ended" in out and "after 2 message(s)" in out
    assert "Traceback" not in out + result.stderr
    assert "odj1." not in out + result.stderr  # no job token printed anywhere


def test_the_readme_embedding_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Embedding", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    code = example.group(1)
    assert len(code.strip().splitlines()) <= 16
    script = tmp_path / "embed.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"Job j-[0-9a-f]{8} succeeded", result.stdout)
    assert "hi" in result.stdout.splitlines()
