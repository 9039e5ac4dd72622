"""Who the agent runs as: with less power than the sidecar whenever the sidecar can arrange it.

A sidecar started as root (the usual case in a container image) runs the agent as an
unprivileged user of the sprite, `opendispatch-agent` (OPENDISPATCH_AGENT_USER names another),
created when missing, with the workspace handed to it. Two things follow:
- the agent cannot read the sidecar's environment (`/proc/<ppid>/environ` is readable by the
  same user only), so the job token it was never given stays out of its reach;
- Claude Code accepts `--dangerously-skip-permissions`, which it refuses as root.

When that cannot be done (no useradd/adduser, a read-only /etc, a workspace that is a system
folder or cannot be chowned), or OPENDISPATCH_AGENT_USER is `root` or `-`, the agent runs as
root, with IS_SANDBOX=1 so Claude Code accepts the flag, and the job's output says so in one
line. A workspace inside a folder closed to that user (a sidecar run outside a sprite, e.g. by
the local backend as root under a private temporary folder) also runs the agent as root, said
on the sidecar's stderr only.
A sidecar that is not root has nothing to give away: the agent runs as the same user.
"""

import os
import pwd
import shutil
import stat
import subprocess
import time
from typing import Dict, List, Optional

AGENT_USER_ENV = "OPENDISPATCH_AGENT_USER"
DEFAULT_AGENT_USER = "opendispatch-agent"
RUN_AS_ROOT = ("root", "-")
USERADD_TIMEOUT_S = 30.0
CREATE_TRIES = 3
CREATE_RETRY_S = 0.5
SYSTEM_FOLDERS = frozenset(
    ("/", "/root", "/home", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/var", "/opt", "/tmp", "/srv", "/proc")
)
SIDECAR_FILE_PREFIX = ".opendispatch-spool"  # the sidecar's own files in the workspace stay root's
SIDECAR_FOLDER = ".od-git"  # the brokers' helpers in the workspace (sockets.py: git credentials, approvals): root's


class AgentIdentity:
    """The user the agent (and every command run in its workspace) runs as.

    `uid` is None when the agent runs as the sidecar's own user; `fallback` then says why, if
    the sidecar is root and meant to drop (None when there was nothing to drop).
    """

    def __init__(
        self,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
        name: str = "",
        home: str = "",
        fallback: Optional[str] = None,
        quiet: bool = False,
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.name = name
        self.home = home
        self.fallback = fallback
        self.quiet = quiet  # said on stderr only: the sidecar is not in a sprite (see cannot_reach)

    @property
    def dropped(self) -> bool:
        return self.uid is not None

    def extra_groups(self) -> Optional[List[int]]:
        """For subprocess.Popen: none of the sidecar's supplementary groups when dropping, else as is."""
        return [] if self.uid is not None else None

    def home_in(self, env: Dict[str, str], workspace: str) -> str:
        """The agent's HOME, where it keeps its conversations.

        The user's own home; but a sidecar HOME inside the workspace (the local backend sets
        HOME to the sprite's workspace) stays: that folder is the agent's already.
        """
        sidecar_home = env.get("HOME", "").strip()
        if self.uid is None:
            return sidecar_home or workspace
        if sidecar_home:
            real, space = os.path.realpath(sidecar_home), os.path.realpath(workspace)
            if real == space or real.startswith(space + os.sep):
                return sidecar_home
        return self.home

    def agent_env(self, env: Dict[str, str], argv: List[str], home: str) -> Dict[str, str]:
        """The agent's environment: its HOME, USER and LOGNAME, or IS_SANDBOX for a root Claude."""
        env = dict(env)
        if self.uid is not None:
            env.update(HOME=home, USER=self.name, LOGNAME=self.name)
        elif self.fallback is not None and argv and os.path.basename(argv[0]) == "claude":
            env["IS_SANDBOX"] = "1"  # Claude Code refuses --dangerously-skip-permissions as root otherwise
        return env

    def note(self) -> Optional[str]:
        """The line the job's output carries when the agent runs as root; None otherwise."""
        if self.fallback is None or self.quiet:
            return None
        return f"[sidecar] running the agent as root: {self.fallback}; it can read the sidecar's environment"

    def give(self, path: str) -> None:
        """Hand `path` (recursively, links not followed) to the agent's user; the sidecar's files stay."""
        if self.uid is None or self.gid is None:
            return
        uid, gid = self.uid, self.gid
        os.lchown(path, uid, gid)
        for folder, dirs, files in os.walk(path):
            if folder == path:
                dirs[:] = [name for name in dirs if name != SIDECAR_FOLDER]
            for name in dirs + files:
                if not name.startswith(SIDECAR_FILE_PREFIX):
                    os.lchown(os.path.join(folder, name), uid, gid)

    def give_folder(self, path: str) -> None:
        """Hand one folder (not what is in it) to the agent's user, so it may add files there."""
        if self.uid is not None and self.gid is not None:
            os.lchown(path, self.uid, self.gid)

    def give_file(self, path: str) -> None:
        """An (empty) file the agent may write, in a folder it does not own (its artifacts file)."""
        if self.uid is None or self.gid is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.fchown(fd, self.uid, self.gid)
        finally:
            os.close(fd)


    def cannot_reach(self, path: str) -> Optional[str]:
        """Why the user cannot go through `path` and its parents (one is closed), or None.

        Only a sidecar outside a sprite meets this (the local backend as root, under a private
        temporary folder): a sprite's /workspace is open. Absolute paths into the workspace
        would fail for the agent there, so it runs as root, which stderr says.
        """
        if self.uid is None:
            return None
        current = os.path.realpath(path)
        while True:
            try:
                info = os.stat(current)
            except OSError as exc:
                return f"{current}: {exc.strerror}"
            if info.st_uid == self.uid:
                allowed = info.st_mode & stat.S_IXUSR
            elif info.st_gid == self.gid:
                allowed = info.st_mode & stat.S_IXGRP
            else:
                allowed = info.st_mode & stat.S_IXOTH
            if not allowed:
                return f"the user {self.name} cannot enter {current}"
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent


def not_to_give(path: str) -> Optional[str]:
    """Why `path` must not be handed to the agent's user (a system folder), or None."""
    real = os.path.realpath(path)
    if real in SYSTEM_FOLDERS:
        return f"the workspace {real} is a system folder; set OPENDISPATCH_WORKSPACE to a folder of its own"
    return None


def agent_identity(env: Dict[str, str]) -> AgentIdentity:
    """Decide, once per sidecar, who the agent runs as (creating the user when missing)."""
    if os.geteuid() != 0:
        return AgentIdentity()  # already unprivileged: nothing to give away
    wanted = env.get(AGENT_USER_ENV, "").strip() or DEFAULT_AGENT_USER
    if wanted in RUN_AS_ROOT:
        return AgentIdentity(fallback=f"{AGENT_USER_ENV}={wanted} asks for it")
    entry = find_user(wanted)
    for attempt in range(CREATE_TRIES):
        if entry is not None:
            break
        problem = create_user(wanted)
        entry = find_user(wanted)  # another sidecar of this sprite may have made it meanwhile
        if entry is None and attempt + 1 == CREATE_TRIES:
            return AgentIdentity(fallback=problem or f"the user {wanted} was created but cannot be found")
        if entry is None:
            time.sleep(CREATE_RETRY_S)  # useradd fails while another holds the lock on /etc/passwd
    assert entry is not None
    if entry.pw_uid == 0:
        return AgentIdentity(fallback=f"the user {wanted} is root")
    home = entry.pw_dir or f"/home/{wanted}"
    try:
        os.makedirs(home, exist_ok=True)
        if os.stat(home).st_uid != entry.pw_uid:
            os.chown(home, entry.pw_uid, entry.pw_gid)
    except OSError as exc:
        return AgentIdentity(fallback=f"the home folder {home} of {wanted} is not usable: {exc.strerror}")
    return AgentIdentity(entry.pw_uid, entry.pw_gid, wanted, home)


def find_user(name: str) -> "Optional[pwd.struct_passwd]":
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def create_user(name: str) -> Optional[str]:
    """Create a system user with a home; None on success, else why not (for the job's output)."""
    home = f"/home/{name}"
    if shutil.which("useradd"):
        argv = ["useradd", "--system", "--create-home", "--home-dir", home, "--shell", "/bin/sh", name]
    elif shutil.which("adduser"):  # busybox (Alpine): -S system, -D no password
        argv = ["adduser", "-S", "-D", "-h", home, "-s", "/bin/sh", name]
    else:
        return f"there is no useradd or adduser in this image to create the user {name}"
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=USERADD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[0]} could not create the user {name}: {exc}"
    if done.returncode != 0:
        said = done.stdout.decode("utf-8", "replace").strip().splitlines()
        return f"{argv[0]} could not create the user {name}: {said[-1] if said else f'exit code {done.returncode}'}"
    return None
