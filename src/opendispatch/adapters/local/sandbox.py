"""The sandbox of local sprites on Linux: bubblewrap (`bwrap`), and what it lets a sprite see.

A sandboxed sprite runs in namespaces of its own:
- **mount**: a fresh root with only the system folders (`/usr`, `/bin`, `/lib*`), a few pieces
  of `/etc`, the Python that runs the sidecar, the folders of the sprite's PATH (and what
  their links point to), the folders the operator lists, the sidecar, and the repository when
  it is a host path the access policy allowed, all read-only; its workspace, read-write, at
  the same path as on the host; private `/tmp`, `/var/tmp`, `/proc` and `/dev`. Nothing else
  of the host: not the dispatcher's files, its database, other sprites' workspaces.
- **pid**: the sprite sees only its own processes (no `/proc/<dispatcher>/environ`); when the
  namespace's first process (bwrap's init) dies, the kernel kills every process left in it,
  so a `setsid` child cannot outlive `destroy`.
- **network**: only a loopback interface; `network.py` says what it can reach through it.
- **ipc**, and cgroup where the kernel has it.

A dispatcher running as root keeps root in the sandbox (no user namespace), so the sidecar
can still run the agent as the unprivileged `opendispatch-agent`; but with only the
capabilities it needs for that (`ROOT_CAPABILITIES`), and bwrap sets no-new-privileges, so no
program in the sandbox gains more. A dispatcher that is not root gets a user namespace
mapping only its own user (bwrap does so by itself).

`sandbox_problem()` says why no sandbox can be made here (None when it can).
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

BWRAP = "bwrap"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install -y bubblewrap; Fedora: dnf install bubblewrap)"
PROBE_TIMEOUT_S = 20.0

#: Inside the sandbox: the launcher and the sprite's socket folder.
SANDBOX_RUN = "/run/opendispatch"
SANDBOX_INIT = f"{SANDBOX_RUN}/sandbox_init.py"
SANDBOX_NET = f"{SANDBOX_RUN}/net"

SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: What programs need of /etc: users and groups (the agent's user), name resolution of
#: localhost, TLS roots, the dynamic linker's cache, Debian's alternatives, git's and Python's
#: system configuration. Never /etc as a whole (shadow, ssh keys, the host's own secrets).
ETC_ENTRIES = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf",
    "localtime", "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
    "ssl", "ca-certificates", "ca-certificates.conf", "pki", "crypto-policies", "gitconfig",
    "mime.types", "protocols", "services", "os-release", "debian_version", "bash.bashrc",
    "inputrc", "terminfo", "environment",
)
#: Enough for the sidecar to run the agent as another user and clean up after it.
ROOT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
    "CAP_NET_BIND_SERVICE",
)
#: Folders never mounted whole, even when a PATH entry or a link points there.
TOO_WIDE = frozenset({"/", "/home", "/root", "/tmp", "/var", "/etc", "/opt", "/srv", "/mnt", "/media", "/run", "/usr"})
SPECIAL = ("/proc", "/sys", "/dev")


def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def base_arguments(*, as_root: bool | None = None) -> list[str]:
    """Namespaces, capabilities, system folders, /etc pieces and private /proc, /dev, /tmp."""
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-cgroup-try"]
    if _running_as_root() if as_root is None else as_root:
        args += ["--cap-drop", "ALL"]
        for capability in ROOT_CAPABILITIES:
            args += ["--cap-add", capability]
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    args += ["--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/var"]  # bwrap's own default: 0700
    for name in ETC_ENTRIES:
        path = f"/etc/{name}"
        if os.path.lexists(path) and os.path.exists(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/var/tmp"]
    return args


def _parent_folders(destinations: Iterable[str]) -> list[str]:
    """The folders above each mount point, to make open (0755) before mounting.

    bwrap makes missing parents 0700, which would shut the agent's user out of the workspace
    and of the programs' folders (the sidecar runs the agent as another user).
    """
    found: dict[str, None] = {}
    for destination in destinations:
        parts = Path(destination).parts[1:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:depth])
            if folder in ("/tmp", "/var/tmp", "/var") or any(_inside(folder, s) for s in SYSTEM_FOLDERS):
                continue
            found[folder] = None
    return sorted(found, key=lambda folder: folder.count("/"))


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"local sprites can only be sandboxed on Linux (this is {sys.platform})"
    bwrap = bwrap_path()
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    true = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
    try:
        done = subprocess.run(
            [bwrap, *base_arguments(), "--", true],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run: {exc}"
    if done.returncode != 0:
        said = done.stdout.decode("utf-8", "replace").strip().splitlines()
        why = said[-1] if said else f"exit code {done.returncode}"
        return (
            f"bwrap cannot make a sandbox here ({why}); it needs user namespaces, or root, "
            "and a kernel and container that allow new namespaces"
        )
    return None


def sandbox_problem(*, refresh: bool = False) -> str | None:
    """Why local sprites cannot be sandboxed on this machine, in one sentence; None when they can.

    Checked once per process (a short bwrap run with the sandbox's namespaces and mounts);
    `refresh=True` checks again (after installing bubblewrap).
    """
    if refresh:
        _probe.cache_clear()
    return _probe()


# --- what a sprite sees --------------------------------------------------------------------


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def home_folders() -> frozenset[str]:
    try:
        return frozenset(os.path.realpath(entry.pw_dir) for entry in pwd.getpwall() if entry.pw_dir)
    except OSError:
        return frozenset()


@attrs.define
class MountPlan:
    """Host paths a sprite may read, each at the same path inside, never touching `private`.

    `private` are folders whose contents must stay invisible (the database's folder, the
    workspaces' root): a folder that holds one, or lies inside one, is never mounted.
    """

    private: tuple[str, ...]
    homes: frozenset[str] = attrs.field(factory=home_folders)
    read_only: list[str] = attrs.Factory(list)
    links: list[tuple[str, str]] = attrs.Factory(list)  # (inside path, target)
    refused: list[str] = attrs.Factory(list)

    def covered(self, path: str) -> bool:
        return (
            any(_inside(path, folder) for folder in self.read_only)
            or any(_inside(path, link) for link, _ in self.links)
            or any(_inside(path, folder) for folder in SYSTEM_FOLDERS if os.path.isdir(folder))
        )

    def allowed(self, folder: str) -> bool:
        if folder in TOO_WIDE or folder in self.homes or any(_inside(folder, s) for s in SPECIAL):
            return False
        return not any(_inside(secret, folder) or _inside(folder, secret) for secret in self.private)

    def add(self, path: str) -> bool:
        """Mount `path` (a folder or file) read-only where allowed; True when it is visible."""
        if not os.path.isabs(path) or not os.path.exists(path):
            return False
        real = os.path.realpath(path)
        if not self.covered(real):
            if not self.allowed(real):
                if real not in self.refused:
                    self.refused.append(real)
                return False
            self.read_only.append(real)
        normal = os.path.normpath(path)
        if normal != real and not self.covered(normal):
            self.links.append((normal, real))
        return True

    def add_install(self, folder: str) -> None:
        """A folder of PATH: itself, and what the programs in it need around them.

        A link in it that points elsewhere (npm's `node_modules/.bin/claude`) brings in the
        smallest folder holding both (`node_modules`), or the target's own folder when that
        would be too wide; a version manager's `shims` folder brings in its parent (pyenv's
        shims run `~/.pyenv/libexec/pyenv`).
        """
        if not self.add(folder):
            return
        real = os.path.realpath(folder)
        if os.path.basename(real) == "shims":
            parent = os.path.dirname(real)
            if self.allowed(parent):
                self.add(parent)
        try:
            entries = list(os.scandir(real))
        except OSError:
            return
        for entry in entries:
            if not entry.is_symlink():
                continue
            target = os.path.realpath(entry.path)
            if not os.path.exists(target) or self.covered(target):
                continue
            common = os.path.commonpath([real, target])
            self.add(common if self.allowed(common) and common != real else os.path.dirname(target))

    def add_program(self, executable: str) -> None:
        """A program and its installation: `<prefix>/bin/x` brings in `<prefix>`."""
        real = os.path.realpath(executable)
        folder = os.path.dirname(real)
        prefix = os.path.dirname(folder) if os.path.basename(folder) == "bin" else folder
        if not self.add(prefix):
            self.add(folder)


def python_prefix() -> str:
    """The installation of the Python running us (a venv's base), which runs the sidecar."""
    return os.path.realpath(sys.base_prefix)


def plan_mounts(
    *, search_path: str, private: Iterable[Path], read_only: Iterable[Path], programs: Sequence[str]
) -> MountPlan:
    plan = MountPlan(private=tuple(os.path.realpath(p) for p in private))
    plan.add(python_prefix())
    for program in programs:
        plan.add_program(program)
    for folder in search_path.split(os.pathsep):
        plan.add_install(folder)
    for path in read_only:
        plan.add(str(path))
    return plan


def bwrap_arguments(
    plan: MountPlan,
    *,
    files: Sequence[tuple[str, str]],
    extra_read_only: Sequence[tuple[str, str]],
    network_folder: str,
    workspace: str,
    info_fd: int,
) -> list[str]:
    """bwrap's options for one sprite (the command follows `--`)."""
    args = base_arguments()
    destinations = [*plan.read_only, *(link for link, _ in plan.links), *(inside for _, inside in extra_read_only)]
    destinations += [inside for _, inside in files] + [SANDBOX_NET, workspace]
    for folder in _parent_folders(destinations):
        args += ["--perms", "0755", "--dir", folder]
    for folder in plan.read_only:
        args += ["--ro-bind", folder, folder]
    for source, inside in extra_read_only:
        args += ["--ro-bind", source, inside]
    for link, target in plan.links:
        args += ["--symlink", target, link]
    for source, inside in files:
        args += ["--ro-bind", source, inside]
    args += ["--ro-bind", network_folder, SANDBOX_NET]
    args += ["--bind", workspace, workspace, "--chdir", workspace]
    args += ["--info-fd", str(info_fd)]
    return args


# --- the processes of a sandbox -------------------------------------------------------------


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(init_pid: int) -> list[int]:
    """Host pids of every process in the PID namespace whose first process is `init_pid`."""
    namespace = _pid_namespace(init_pid)
    if namespace is None:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pid_namespace(int(entry)) == namespace:
            members.append(int(entry))
    return members
