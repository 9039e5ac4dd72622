"""What a job asks for: repository, branch, image, agent, timeout and the task text.

Validation here is the last line of defence: the values end up as argv elements in the
sprite (`git clone -- REPO`), so anything that could be read as an option is refused.
"""

from __future__ import annotations

import enum
import posixpath
import re
import urllib.parse

import attrs

from .errors import UsageError

DEFAULT_BRANCH = "main"
DEFAULT_TIMEOUT_S = 600.0
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 24 * 3600.0


class AgentKind(enum.Enum):
    CLAUDE = "claude"
    OPENCODE = "opencode"
    SHELL = "shell"

    @classmethod
    def parse(cls, text: str) -> AgentKind:
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(kind.value for kind in cls)
            raise UsageError(f"Unknown agent {text!r}: choose one of {choices}.") from None


_GITHUB_SLUG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
_GIT_URL = re.compile(r"(?:https?|ssh|git|file)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+")
_LOCAL_PATH = re.compile(r"(?:/|\./|\.\./|~/)[^\x00-\x1f]*")
_BRANCH = re.compile(r"[A-Za-z0-9._/+-]{1,200}")
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:@-]{0,254}", re.IGNORECASE)


#: `scheme://user[:password]@host...`: the part a URL carries credentials in.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/@\s]*)@")
#: A `..` path segment, also percent-encoded (`%2e%2e`, `.%2E`).
_DOT_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){2}(?:/|$|[?#])", re.IGNORECASE)


def validate_repo(text: str) -> str:
    """Accept `owner/repo`, a git URL, or a local path; refuse anything option-like.

    A URL that carries credentials is refused without being repeated (the message is shown in
    chat and the spec is stored); a remote URL with `..` segments is refused, since a pattern
    like `https://github.com/acme/*` would otherwise admit `.../acme/../other/x.git`.
    """
    userinfo = _URL_USERINFO.match(text.strip())
    if userinfo is not None and _carries_secret(userinfo.group("scheme"), userinfo.group("userinfo")):
        raise UsageError(
            "That repository URL carries credentials (the part before @), and chat is no place for a "
            "token: give the URL without them; private clones use the operator's credentials."
        )
    repo = text.strip()
    if repo.endswith("/") and len(repo) > 1 and not _LOCAL_PATH.fullmatch(repo):
        repo = repo.rstrip("/")
    if repo.startswith("-") or not repo:
        raise UsageError(f"Bad repository {text!r}: use owner/repo, a git URL or a local path.")
    if _GITHUB_SLUG.fullmatch(repo) and ".." not in repo.split("/")[1]:
        return repo
    if _GIT_URL.fullmatch(repo) and not repo.lower().startswith("file:") and _DOT_DOT_SEGMENT.search(_url_path(repo)):
        raise UsageError(f"Bad repository {text!r}: a repository URL may not contain '..' segments.")
    if _GIT_URL.fullmatch(repo) or _LOCAL_PATH.fullmatch(repo):
        return repo
    raise UsageError(f"Bad repository {text!r}: use owner/repo, a git URL or a local path.")


def _carries_secret(scheme: str, userinfo: str) -> bool:
    """Over http(s) any user part may be a token (`https://ghp_x@github.com/...`); over ssh a
    plain user name (`ssh://git@host/...`) is how the protocol works, a password is not."""
    if scheme.lower() in ("http", "https"):
        return True
    return ":" in userinfo


def _url_path(url: str) -> str:
    """The path of a URL, or of scp-like `user@host:path`."""
    if "://" in url:
        rest = url.split("://", 1)[1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else ""
    return "/" + url.split(":", 1)[1] if ":" in url else url


def host_repo_path(repo: str) -> str | None:
    """The path on the dispatcher's own filesystem that `repo` names, or None for a remote repo.

    `/srv/git/x`, `./x`, `../x`, `~/x` and `file:///srv/git/x` are host paths (a sprite on
    this machine would clone them from its disk). Absolute ones come back normalised, with
    `..` resolved and `file://` percent-escapes decoded, so `/allowed/../secret` is `/secret`;
    relative ones come back as they are (relative to a sprite's workspace: never allowlisted
    by an absolute pattern).
    """
    text = repo.strip()
    if text.startswith("file://"):
        rest = urllib.parse.unquote(text[len("file://") :])
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        text = rest if rest.startswith("/") else "//" + rest  # file://host/x: not a path of ours
    elif not _LOCAL_PATH.fullmatch(text):
        return None
    if text.startswith("/"):
        return posixpath.normpath(text) if not text.startswith("//") else text
    return text


def is_path_pattern(pattern: str) -> bool:
    """An allowlist pattern that names host paths (`/srv/git/*`, `file:///srv/git/*`)."""
    return pattern.startswith(("/", "file://"))


def validate_branch(text: str) -> str:
    branch = text.strip()
    if (
        not _BRANCH.fullmatch(branch)
        or branch.startswith(("-", "/", "."))
        or branch.endswith(("/", ".", ".lock"))
        or ".." in branch
        or "//" in branch
    ):
        raise UsageError(f"Bad branch name {text!r}: use a git branch such as main or feature-x.")
    return branch


def validate_image(text: str) -> str:
    image = text.strip()
    if not _IMAGE.fullmatch(image):
        raise UsageError(
            f"Bad image {text!r}: use an alias from SPRITE_IMAGES or an image reference "
            "such as registry.fly.io/my-sprites/agent:latest."
        )
    return image


def parse_duration(text: str) -> float:
    """`90s`, `10m`, `1h`, `1h30m` or plain seconds, between 1 second and 24 hours."""
    match = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*", text.lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"Bad timeout {text!r}: use a duration such as 90s, 10m or 1h.")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = float(hours * 3600 + minutes * 60 + seconds)
    if not MIN_TIMEOUT_S <= total <= MAX_TIMEOUT_S:
        raise UsageError(f"Bad timeout {text!r}: it must be between 1s and 24h.")
    return total


MAX_COST_USD = 10_000.0

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}")


def validate_model(text: str) -> str:
    """A model name as agents take it: `claude-sonnet-4-5`, `anthropic/claude-sonnet-4-5`.

    It becomes one argv element of the agent (`--model X`, `-m X`); the first character
    cannot make it an option.
    """
    name = text.strip()
    if not _MODEL.fullmatch(name):
        raise UsageError(
            f"Bad model {text!r}: use the agent's model name, such as claude-sonnet-4-5 or "
            "anthropic/claude-sonnet-4-5 (letters, digits and ._:/@-, at most 100)."
        )
    return name


def parse_cost(text: str) -> float:
    """`2.50` or `$2.50`: a cost cap in US dollars, more than 0 and at most 10,000."""
    cleaned = text.strip().removeprefix("$").strip()
    try:
        value = float(cleaned)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= MAX_COST_USD:
        raise UsageError(f"Bad cost cap {text!r}: use an amount in US dollars such as 2.50 (at most 10000).")
    return round(value, 4)


def format_cost(usd: float) -> str:
    """`$2.61`, `$0.0042`: cents for amounts that have them, more digits for tiny ones."""
    if usd >= 0.1 or usd == 0:
        return f"${usd:,.2f}"
    digits = 4 if usd < 0.01 else 3
    whole, fraction = f"{usd:.{digits}f}".split(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def format_tokens(count: int) -> str:
    """`950`, `12.3k`, `1.2M` tokens."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k".replace(".0k", "k")
    return f"{count / 1_000_000:.1f}M".replace(".0M", "M")


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration` for whole seconds, and a readable elapsed time."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


@attrs.frozen
class JobSpec:
    """A fully resolved request: aliases expanded, defaults applied, values validated."""

    task: str
    agent: AgentKind
    repo: str | None = None
    branch: str = DEFAULT_BRANCH
    image: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: Stop the job when the agent's cost reaches this many US dollars (`--max-cost`).
    max_cost_usd: float | None = None
    #: The agent's model (`--model`), passed to each agent its own way; None: its default.
    model: str | None = None
    #: Which tool calls wait for a person (the channel's `approvals`, approvals.py), as text;
    #: None: none do.
    approvals: str | None = None
    approval_timeout_s: float = 600.0
    #: The settings that came from the channel's defaults (`/od-config`), not the command:
    #: the first reply says so.
    from_channel: tuple[str, ...] = ()

    def summary(self) -> str:
        """`owner/repo @ branch · agent · image`, the line every first reply echoes."""
        where = f"{self.repo} @ {self.branch}" if self.repo else "no repository"
        line = f"{where} · {self.agent.value}{f' ({self.model})' if self.model else ''} · {self.image or 'default image'}"
        if self.from_channel:
            line += " · channel defaults: " + ", ".join(self.from_channel)
        return line
