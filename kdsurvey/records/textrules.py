"""Text rules that need no record: Title Case, near-equal titles, one person's name spelled two
ways, the month an arXiv id was issued in. ``kdsurvey check metadata`` warns by them, and
``import bibtex`` writes records that keep them."""

from __future__ import annotations

import re

from kdsurvey.records.model import ascii_fold, family_name

#: Words that stay lowercase inside a title (articles, conjunctions, prepositions).
MINOR_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "but",
        "or",
        "nor",
        "for",
        "so",
        "yet",
        "as",
        "at",
        "by",
        "in",
        "of",
        "off",
        "on",
        "onto",
        "per",
        "to",
        "up",
        "via",
        "with",
        "from",
        "into",
        "over",
        "upon",
        "vs",
        "versus",
    }
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def arxiv_date(arxiv_id: str) -> tuple[int, int]:
    """``(year, month)`` an arXiv id was issued in: ``2305.12345`` -> (2023, 5),
    ``cs/0112017`` -> (2001, 12)."""
    digits = arxiv_id.split("/", 1)[1] if "/" in arxiv_id else arxiv_id
    yy, mm = int(digits[:2]), int(digits[2:4])
    return (1900 + yy if yy >= 91 else 2000 + yy), mm


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or ``limit + 1`` as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, 1):
        current = [j] + [0] * len(a)
        low = current[0]
        for i, ca in enumerate(a, 1):
            current[i] = min(previous[i] + 1, current[i - 1] + 1, previous[i - 1] + (ca != cb))
            low = min(low, current[i])
        if low > limit:
            return limit + 1
        previous = current
    return previous[-1]


def near_limit(title: str) -> int:
    """How many edits still make two normalised titles "the same": 1 for short ones, up to 3."""
    return 1 if len(title) < 20 else min(3, len(title) // 20 + 1)


# -- title casing ----------------------------------------------------------------------------------


def _case_part(part: str, minor_ok: bool) -> str:
    letters = "".join(c for c in part if c.isalpha())  # accented letters too (Über)
    if not letters or re.search(r"\d", part) or any(c.isupper() for c in letters[1:]):
        return part  # acronyms, CamelCase names, numbers: as written
    start = next(i for i, c in enumerate(part) if c.isalpha())
    word = part[start:]
    core = re.sub(r"[\W\d_]+$", "", word).lower()
    if minor_ok and core in MINOR_WORDS:
        return part[:start] + word.lower()
    return part[:start] + word[0].upper() + word[1:]


def title_case(title: str) -> str:
    """The Title Case the catalogue writes titles in: minor words lowercase except first, last and
    after a colon; each part of a hyphenated word capitalised; acronyms and names as written."""
    words = title.split(" ")
    out = []
    after_colon = True
    for index, word in enumerate(words):
        edge = after_colon or index == len(words) - 1
        parts = word.split("-")
        # the first part of a word is capitalised at the edges and in hyphenated compounds
        out.append(
            "-".join(
                _case_part(part, minor_ok=k > 0 or (not edge and len(parts) == 1))
                for k, part in enumerate(parts)
            )
        )
        after_colon = word.endswith((":", "?", "!", "\u2014"))
    return " ".join(out)


def fold(text: str) -> str:
    return re.sub(r"[^a-z]", "", ascii_fold(text).lower())


def person_key(author: str) -> str:
    family, _, given = author.partition(",")
    return f"{fold(family)},{fold(given)}"


def family_key(author: str) -> str:
    return fold(family_name(author))


def given_tokens(author: str) -> list[str]:
    return [t for t in re.split(r"[\s.\-]+", author.partition(",")[2]) if t]


def initials_only(author: str) -> bool:
    tokens = given_tokens(author)
    return bool(tokens) and all(len(t) == 1 for t in tokens)


def initials(author: str) -> str:
    return "".join(t[0].upper() for t in given_tokens(author))
