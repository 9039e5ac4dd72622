"""What a job produced: pull-request URLs seen in the output, and the agent's artifacts file."""

import os
import re
import stat
import threading
from typing import Callable, Dict, List, Optional, Tuple

from .output import say

_GITHUB_PR = re.compile(r"https?://(?:www\.)?github\.com/([\w.-]+/[\w.-]+)/pull/(\d+)")
_GITLAB_MR = re.compile(r"https?://[^\s/\"'<>]+/((?:[\w.-]+/)+?[\w.-]+)/(?:-/)?merge_requests/(\d+)")
_HTTP_URL = re.compile(r"https?://\S+")


def describe_url(url: str) -> Tuple[str, str]:
    """(name, type) for a URL: pull/merge requests are named after their repository."""
    github = _GITHUB_PR.match(url)
    if github:
        return f"{github.group(1)}#{github.group(2)}", "pull_request"
    gitlab = _GITLAB_MR.match(url)
    if gitlab:
        return f"{gitlab.group(1)}!{gitlab.group(2)}", "pull_request"
    return url, "link"


class Artifacts:
    """Pull-request URLs seen in the output plus the agent's artifacts file, deduplicated."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found = {}  # type: Dict[str, Dict[str, str]]

    def scan(self, line: str) -> None:
        for pattern in (_GITHUB_PR, _GITLAB_MR):
            for match in pattern.finditer(line):
                url = match.group(0)
                name, kind = describe_url(url)
                self._add(name, url, kind)

    def _add(self, name: str, url: str, kind: str) -> None:
        with self._lock:
            self._found.setdefault(url, {"name": name, "url": url, "type": kind})

    def read_file(
        self, path: str, base_dir: str, redact: Callable[[str], str], writer_uid: Optional[int] = None
    ) -> None:
        """One artifact a line: a URL or a file path, optionally `name<TAB>target`.

        The sidecar may read as root a file an unprivileged agent wrote: a link is not
        followed, and with `writer_uid` a file that user does not own is not read, so the
        agent cannot have the sidecar send the server a file only root may read.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        except OSError as exc:
            say(f"could not read the artifacts file {path}: {exc.strerror}")
            return
        with open(fd, "r", encoding="utf-8", errors="replace") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or (writer_uid is not None and info.st_uid != writer_uid):
                say(f"not reading the artifacts file {path}: not a plain file of the agent's user")
                return
            try:
                entries = handle.read().splitlines()
            except OSError as exc:
                say(f"could not read the artifacts file {path}: {exc.strerror}")
                return
        for entry in entries:
            entry = redact(entry.strip())
            if not entry or entry.startswith("#"):
                continue
            name, _, target = entry.partition("\t") if "\t" in entry else ("", "", entry)
            name, target = name.strip(), target.strip()
            if not target:
                continue
            if _HTTP_URL.fullmatch(target):
                default_name, kind = describe_url(target)
                self._add(name or default_name, target, kind)
            else:
                file_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(target)))
                self._add(name or os.path.basename(file_path), file_path, "file")

    def collected(self) -> List[Dict[str, str]]:
        with self._lock:
            return list(self._found.values())
