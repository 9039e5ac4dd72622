"""An agent's markdown answer as Slack mrkdwn: small, pure, and never a way to ping or link.

Agents answer in common markdown; Slack speaks its own dialect. What is converted:

- `**bold**` and `__bold__` → `*bold*`; `*italic*` and `_italic_` → `_italic_`; `~~x~~` → `~x~`
- `# Heading` (any level) → `*Heading*`
- `[text](https://…)` → `<https://…|text>`, only for http(s) urls; other links stay as text
- `- item` / `* item` / `+ item` → `• item`; `> quote` stays a quote
- fenced code blocks → ``` blocks whose lines cannot close the block early; `inline code` stays

Everything else is text: `&`, `<` and `>` become entities wherever we did not write the
markup ourselves, so `<!channel>` or `<http://x|y>` in an answer is shown, never acted on.
"""

from __future__ import annotations

import re

FENCE = "```"
_ZWSP = "\u200b"
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^ {0,3}>\s?(.*)$")
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_text>.+?)(?P=code)"
    r"|\[(?P<link_text>[^\[\]]+)\]\((?P<url>[^()\s]+)\)"
    r"|\*\*(?P<bold>(?=\S).+?(?<=\S))\*\*"
    r"|(?<!\w)__(?P<bold2>(?=\S).+?(?<=\S))__(?!\w)"
    r"|~~(?P<strike>(?=\S).+?(?<=\S))~~"
    r"|(?<![\w*])\*(?P<italic>(?=[^\s*]).+?(?<=[^\s*]))\*(?![\w*])"
    r"|(?<!\w)_(?P<italic2>(?=[^\s_]).+?(?<=[^\s_]))_(?!\w)"
)
_SAFE_URL = re.compile(r"^https?://[^\s<>|]+$")


def escape(text: str) -> str:
    """Slack's three control characters as entities: user and log text is never markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_line(line: str) -> str:
    """A (log) line for inside a ``` block: escaped, and unable to close the block early."""
    return escape(line).replace(FENCE, f"`{_ZWSP}`{_ZWSP}`")


def to_mrkdwn(markdown: str) -> str:
    """`markdown` as Slack mrkdwn; an unclosed code block is closed at the end."""
    out: list[str] = []
    fence: str | None = None  # the opening fence while inside a code block
    code: list[str] = []
    for line in markdown.split("\n"):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                out.append(_code_block(code))
                fence, code = None, []
            else:
                code.append(line)
            continue
        opened = _FENCE_OPEN.match(line)
        if opened:
            fence, code = opened.group(1), []
            continue
        out.append(_line(line))
    if fence is not None:
        out.append(_code_block(code))
    return "\n".join(out)


def _code_block(lines: list[str]) -> str:
    return FENCE + "\n" + "\n".join(code_line(line) for line in lines) + "\n" + FENCE


def _line(line: str) -> str:
    heading = _HEADING.match(line)
    if heading:
        text = re.sub(r"\*\*|__", "", heading.group(1)).strip()  # the heading is bold already
        return f"*{inline(text)}*" if text else ""
    quote = _QUOTE.match(line)
    if quote:
        return "> " + inline(quote.group(1))
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}• {inline(bullet.group(2))}"
    return inline(line)


def inline(text: str) -> str:
    """One line's inline markup converted, everything else escaped."""
    out: list[str] = []
    end = 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[end : match.start()]))
        out.append(_inline_piece(match))
        end = match.end()
    out.append(escape(text[end:]))
    return "".join(out)


def _inline_piece(match: re.Match[str]) -> str:
    if match.group("code") is not None:
        return "`" + escape(match.group("code_text").replace("`", "'")) + "`"
    if match.group("link_text") is not None:
        label, url = match.group("link_text"), match.group("url")
        if _SAFE_URL.match(url):
            shown = escape(_plain(label)).replace("|", "¦") or escape(url)
            return f"<{url.replace('&', '&amp;')}|{shown}>"
        return escape(f"{label} ({url})")
    for group, mark in (("bold", "*"), ("bold2", "*"), ("strike", "~"), ("italic", "_"), ("italic2", "_")):
        inner = match.group(group)
        if inner is not None:
            return f"{mark}{inline(inner)}{mark}"
    return escape(match.group(0))  # pragma: no cover - every alternative has a group


def _plain(text: str) -> str:
    """Link text without emphasis markers (Slack shows a link's label as is)."""
    return re.sub(r"(\*\*|__|~~|`)", "", text)
