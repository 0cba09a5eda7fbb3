"""Escaping: record text into Markdown, HTML attributes, URLs and front matter, shown as written."""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from urllib.parse import quote

from kdsurvey.exporters.render import md_text

_SPACES = re.compile(r"\s+")
# The losses' own prose (trusted, from the manifest): code spans, $math$, **strong** and *em*;
# a backslash before one of their marks keeps it as text (data put into such prose: doc_escape).
_DOC_TOKEN = re.compile(
    r"(?::\w+:)?``?([^`]+?)``?|\$([^$]+?)\$|\*\*(.+?)\*\*|(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])"
    r"|\\([\\`$*])"
)
_DOC_MARKS = re.compile(r"([\\`$*])")


@lru_cache(maxsize=4096)
def mathml(latex: str, display: bool = False) -> str:
    """LaTeX as MathML on one line (browsers render it natively: no script, no CDN).

    ``|`` becomes an entity so that a formula never splits a Markdown table cell.
    """
    from latex2mathml.converter import convert

    out = convert(" ".join(latex.split()), display="block" if display else "inline")
    # latex2mathml leaves sized delimiters (\Big\rVert, \big\|) as commands: draw them
    out = re.sub(r">\\(?:[lr]?Vert|\|)<", ">&#x02016;<", out)
    out = re.sub(r">\\[lr]?vert<", ">&#x0007C;<", out)
    out = re.sub(r"<mi>\\([A-Za-z]+)</mi>", r"<mi>\1</mi>", out)  # \arg and other function names
    return out.replace("|", "&#124;").replace("\n", "")


def _doc(value, escape, code) -> str:
    """The losses' prose, one line: tokens found once, rendered by ``escape`` (text) and ``code``."""
    text = _SPACES.sub(" ", str(value))
    out, pos = [], 0
    for match in _DOC_TOKEN.finditer(text):
        out.append(escape(text[pos : match.start()]))
        span, math, strong, em, literal = match.groups()
        if literal is not None:
            out.append(escape(literal))
        elif span is not None:
            out.append(code(span))
        elif math is not None:
            out.append(mathml(math))
        elif strong is not None:
            out.append(f"<strong>{_doc(strong, escape, code)}</strong>")
        else:
            out.append(f"<em>{_doc(em, escape, code)}</em>")
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def doc_escape(value) -> str:
    """Data (a task's title) put into the losses' prose, so that it shows as written there."""
    return _DOC_MARKS.sub(r"\\\1", str(value))


def code_span(value) -> str:
    """Record text as a Markdown code span that shows it as written, on one line: the fence is
    longer than any run of backticks inside, padded when the text starts or ends with one."""
    text = " ".join(str(value).split())
    tick = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


@lru_cache(maxsize=4096)
def doc_text(value) -> str:
    """One line of the losses' own prose as Markdown: ``code`` and :role:`code` become code
    spans, ``$x$`` MathML, ``**x**`` and ``*x*`` strong and emphasis; the rest text as written."""
    return _doc(value, md_text, lambda span: f"`{span}`")


@lru_cache(maxsize=4096)
def doc_html(value) -> str:
    """:func:`doc_text` for raw HTML: the same prose, code spans as ``<code>``, text escaped."""
    return _doc(
        value,
        lambda text: html.escape(text, quote=False),
        lambda span: f"<code>{html.escape(span, quote=False)}</code>",
    )


@lru_cache(maxsize=1024)
def inline_html(markdown_text: str) -> str:
    """Trusted one-paragraph Markdown (the evidence sentences) as inline HTML, for raw HTML
    blocks. Absolute links only: MkDocs would not rewrite a relative one there."""
    import markdown

    out = markdown.markdown(markdown_text)
    return out.removeprefix("<p>").removesuffix("</p>")


def paragraph_list(value) -> list[str]:
    """The paragraphs (blank-line separated) of the losses' prose."""
    return [p for p in re.split(r"\n\s*\n", str(value or "")) if p.strip()]


def fence(code: str) -> str:
    """A code fence longer than any run of backticks in ``code``, so nothing in it closes it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


def html_text(value) -> str:
    """User text for raw HTML (tables, attributes): every special character an entity."""
    return html.escape(" ".join(str(value).split()), quote=True)


def bibtex_data_url(entry: str) -> str:
    """A ``data:`` URL holding a BibTeX entry, for a download link (``<a download>``)."""
    return "data:application/x-bibtex;charset=utf-8," + quote(entry, safe="")


def front_matter(value) -> str:
    """A YAML scalar for the front matter (JSON strings are YAML); HTML-escaped like a title."""
    return json.dumps(html_text(value), ensure_ascii=False)


def task_label(task: str, tasks: dict) -> str:
    """How a task is shown: its title in ``papers/tasks.yaml`` (``tasks``: the catalogue's)."""
    info = tasks.get(task)
    return info.title if info is not None else task.replace("-", " ").capitalize()


def task_lower(task: str, tasks: dict) -> str:
    """A task's label inside a sentence: lower case except acronyms (NLP, 3D detection)."""
    label = task_label(task, tasks)
    return (
        label
        if label.isupper()
        else label[:1].lower() + label[1:]
        if label[:1].isalpha()
        else label
    )


def slug(key: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", key.lower()).strip("-") or "venue"
