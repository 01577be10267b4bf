"""Text from outside (a URL, a file name, an uploaded file's fields) made safe to show in Markdown.

Streamlit renders Markdown in st.markdown, st.caption and every alert box: a link, an image or HTML in a
student's URL would become a working link or an outside fetch inside the app's own message. `plain()`
turns any text into Markdown that shows exactly that text (every ASCII punctuation character
backslash-escaped, as CommonMark allows; control and bidirectional-override characters replaced; long
text shortened), so no markup, math, emoji code or link can form from it. `outside_references()` finds
what a teacher's lesson text may not contain (links, images, HTML, URLs), since lesson text is Markdown
on purpose.
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUOTE_CHARS = 80  # a quoted value longer than this is shortened, with its length said
MAX_MESSAGE_CHARS = 600  # a whole message (an exception's text) is shortened past this
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_ADDRESS = re.compile(r"(https?://|www(?=\.)|@)", re.IGNORECASE)  # where GFM's autolinks begin
# Links, images and reference definitions, HTML tags, comments and autolinks, URLs with a scheme or www.,
# and KaTeX's link and image commands.
_OUTSIDE = re.compile(
    r"\]\s*[(\[]|^\s*\[[^\]]*\]:|<\s*[a-zA-Z/!?]|[a-zA-Z][a-zA-Z0-9+.\-]*://|\bwww\.|\\(?:href|url|includegraphics)\b",
    re.MULTILINE,
)


def _visible(char: str) -> str:
    """A character as it may appear on one line: white space becomes a space; other controls, line separators and
    format characters (bidirectional overrides among them) become '�'."""
    if char in "\t\n\r\x0b\x0c":
        return " "
    return "\N{REPLACEMENT CHARACTER}" if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs") else char


def plain(text: object, limit: int = MAX_QUOTE_CHARS) -> str:
    """Markdown that shows `text` literally on one line (at most `limit` characters of it, then how long it was)."""
    value = str(text)
    shown = "".join(_visible(c) for c in (value if len(value) <= limit else value[:limit]))
    # GitHub-flavoured Markdown turns web and e-mail addresses in the rendered text into links, escapes or not: an
    # invisible word joiner where each address starts keeps them text.
    shown = _ADDRESS.sub("\\1\N{WORD JOINER}", shown)
    escaped = _PUNCTUATION.sub(r"\\\1", shown)
    return escaped if len(value) <= limit else f"{escaped}… ({len(value):,} characters)"


def message(text: object) -> str:
    """A whole message (an exception's text, which may quote a URL, a file name or a file's field) as plain text."""
    return plain(text, MAX_MESSAGE_CHARS)


def quoted(text: object, limit: int = MAX_QUOTE_CHARS) -> str:
    """`plain(text)` between typographic quotes, for a value inside a sentence."""
    return f"“{plain(text, limit)}”"


def outside_references(markdown: str) -> list[str]:
    """The snippets of `markdown` that would link to, embed or fetch something (links, images, HTML, URLs)."""
    return [markdown[max(0, m.start() - 10) : m.end() + 10] for m in _OUTSIDE.finditer(markdown)]
