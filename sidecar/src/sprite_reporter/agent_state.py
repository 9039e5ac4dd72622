"""An agent's saved conversation as files under HOME: where they are, packing and restoring them.

A session's next message may run in a fresh sprite; the conversation files travel through
the server as a base64 tar.gz (never credentials, never links).
"""

import base64
import glob
import io
import os
import re
import shutil
import tarfile
from typing import List, Optional

def claude_project_dir(path: str) -> str:
    """Claude Code keeps a conversation under ~/.claude/projects/<the cwd, non-alphanumerics as ->."""
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def agent_state_roots(agent: str) -> List[str]:
    """Where each agent keeps its conversations, relative to HOME (credentials are left out)."""
    if agent == "claude":
        return [os.path.join(".claude", "projects")]
    if agent == "opencode":
        return [os.path.join(".local", "share", "opencode")]
    return []


def has_conversation(agent: str, home: str, conversation_id: str) -> bool:
    if agent == "claude":
        return bool(glob.glob(os.path.join(home, ".claude", "projects", "*", glob.escape(conversation_id) + ".jsonl")))
    if agent == "opencode":
        # OpenCode 1.x keeps its sessions in one SQLite file; older releases in storage/.
        data = os.path.join(home, ".local", "share", "opencode")
        storage = os.path.join(data, "storage")
        return os.path.isfile(os.path.join(data, "opencode.db")) or (os.path.isdir(storage) and any(os.scandir(storage)))
    return False


def pack_agent_state(agent: str, home: str) -> Optional[str]:
    """The agent's conversation files as base64 tar.gz (no links, no auth files); None when none."""
    buffer = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for root in agent_state_roots(agent):
            for folder, dirs, files in os.walk(os.path.join(home, root)):
                for name in files:
                    path = os.path.join(folder, name)
                    if name in ("auth.json", ".credentials.json") or os.path.islink(path):
                        continue
                    archive.add(path, arcname=os.path.relpath(path, home), recursive=False)
                    count += 1
    if not count:
        return None
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def restore_agent_state(blob: str, agent: str, home: str, workdir: str, conversation_id: str) -> int:
    """Unpack a saved conversation under HOME (only plain files inside the agent's folders).

    Claude Code finds a conversation by the working directory it was made in; a fresh sprite
    may have another one, so the conversation file is moved to this sprite's project folder.
    OpenCode keeps the directory in its database: the session is moved there.
    """
    roots = agent_state_roots(agent)
    restored = 0
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(blob)), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = os.path.normpath(member.name)
            if not member.isfile() or name.startswith(("/", "..")) or not any(name.startswith(r + os.sep) for r in roots):
                continue
            target = os.path.join(home, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                continue
            with open(target, "wb") as handle:
                shutil.copyfileobj(source, handle)
            restored += 1
    if agent == "opencode":
        move_opencode_session(home, workdir, conversation_id)
    if agent == "claude":
        wanted = os.path.join(home, ".claude", "projects", claude_project_dir(workdir))
        for found in glob.glob(os.path.join(home, ".claude", "projects", "*", glob.escape(conversation_id) + ".jsonl")):
            if os.path.dirname(found) != wanted:
                os.makedirs(wanted, exist_ok=True)
                os.replace(found, os.path.join(wanted, os.path.basename(found)))
    return restored


def move_opencode_session(home: str, workdir: str, session_id: str) -> bool:
    """Point OpenCode's session at this sprite's working directory; False when it cannot be done.

    OpenCode 1.x binds a session to the directory it was made in (`session.directory` in its
    SQLite file) and, resumed from another one, fails ("Unexpected server error") or hangs.
    A sprite of a non-persistent session clones into a folder of its own, so the saved
    session is moved to it before OpenCode runs.
    """
    path = os.path.join(home, ".local", "share", "opencode", "opencode.db")
    if not session_id.startswith("ses_") or not os.path.isfile(path):
        return False
    try:
        import sqlite3
    except ImportError:  # a python3 built without sqlite3: OpenCode starts a new session
        return False
    try:
        db = sqlite3.connect(path)
        try:
            with db:
                changed = db.execute(
                    "UPDATE session SET directory = ? WHERE id = ?", (os.path.abspath(workdir), session_id)
                ).rowcount
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return changed == 1
