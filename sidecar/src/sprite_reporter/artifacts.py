"""What a job produced: pull-request URLs seen in the output, and the agent's artifacts file."""

import base64
import os
import re
import stat
import threading
from typing import Callable, Dict, List, Optional, Tuple

from .output import say

_GITHUB_PR = re.compile(r"https?://(?:www\.)?github\.com/([\w.-]+/[\w.-]+)/pull/(\d+)")
_GITLAB_MR = re.compile(r"https?://[^\s/\"'<>]+/((?:[\w.-]+/)+?[\w.-]+)/(?:-/)?merge_requests/(\d+)")
_HTTP_URL = re.compile(r"https?://\S+")

#: The server keeps a copy of a file artifact up to this size, and at most this many a job
#: (the dispatcher's MAX_KEPT_ARTIFACT_BYTES and MAX_KEPT_ARTIFACT_FILES).
MAX_COPIED_BYTES = 512 * 1024
MAX_COPIED_FILES = 10


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
        self._found = {}  # type: Dict[str, Dict[str, object]]

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

    def collected(self) -> List[Dict[str, object]]:
        with self._lock:
            return [dict(found) for found in self._found.values()]

    def copy_files(self, writer_uid: Optional[int] = None) -> List[Dict[str, object]]:
        """The file artifacts' contents, to send before the workspace is deleted.

        Each file found gets its `size` in the artifacts report; those of at most
        MAX_COPIED_BYTES (the first MAX_COPIED_FILES) are read and returned as upload bodies
        `{name, path, content}` (base64). Read like the artifacts file: no link followed, and
        with `writer_uid` only files of the agent's user, so the agent cannot name a file only
        root may read.
        """
        uploads = []  # type: List[Dict[str, object]]
        with self._lock:
            files = [found for found in self._found.values() if found["type"] == "file"]
        for found in files:
            data = _read_own_file(str(found["url"]), writer_uid, MAX_COPIED_BYTES)
            if data is None:
                continue
            size, content = data
            with self._lock:
                found["size"] = size
            if content is not None and len(uploads) < MAX_COPIED_FILES:
                uploads.append({
                    "name": found["name"],
                    "path": found["url"],
                    "content": base64.b64encode(content).decode("ascii"),
                })
        return uploads


def _read_own_file(path: str, writer_uid: Optional[int], limit: int) -> Optional[Tuple[int, Optional[bytes]]]:
    """(size, content) of a plain file, content None when over `limit`; None when unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or (writer_uid is not None and info.st_uid != writer_uid):
            say(f"not copying the artifact {path}: not a plain file of the agent's user")
            return None
        if info.st_size > limit:
            return info.st_size, None
        try:
            content = handle.read(limit + 1)
        except OSError as exc:
            say(f"could not read the artifact {path}: {exc.strerror}")
            return None
    if len(content) > limit:  # it grew while we looked
        return len(content), None
    return len(content), content
