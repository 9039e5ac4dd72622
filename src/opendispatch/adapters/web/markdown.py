"""Agents' answers as HTML, safely: CommonMark with raw HTML off and unsafe links refused.

An answer is text the agent wrote, possibly steered by what it read in the repository: it
must not be able to put markup or script on the page. markdown-it escapes any HTML in it
(`html: False`) and refuses `javascript:`, `vbscript:`, `file:` and `data:` links (its
`validateLink`); the page's Content-Security-Policy blocks images from elsewhere too.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str) -> str:
    return str(_MARKDOWN.render(text))
