"""Final-answer extraction, normalization and comparison with gold (DESIGN §2 "Answers")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "Extraction",
    "answers_match",
    "extract_answer",
    "normalize_answer",
    "span_logprob",
]


@dataclass(frozen=True)
class Extraction:
    """Where a response's final answer was found and what it normalizes to.

    `text` is the exact slice `response[start:end]`, so the UI can highlight it; `answer` is
    `normalize_answer(text)`. When nothing was found: answer/text None, rule "none", span -1.
    """

    answer: str | None
    text: str | None
    rule: str  # "boxed" | "answer-is" | "hashes" | "last-number" | "none"
    start: int
    end: int


_NONE = Extraction(answer=None, text=None, rule="none", start=-1, end=-1)

# --- extraction -----------------------------------------------------------------------------

_BOXED = re.compile(r"\\boxed\s*\{")
# Grouping braces only: `\\` is consumed first so `\\{` still opens a group, while the LaTeX
# literals `\{` and `\}` never count towards balance.
_BRACE_TOKEN = re.compile(r"\\\\|\\[{}]|[{}]")
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b", re.IGNORECASE)
# A sentence/clause ends at . ! ? ; followed by whitespace or the end, or at ", " (thousands
# separators never have a space after the comma, so "1,248" survives).
_CLAUSE_END = re.compile(r"[.!?;](?=\s|$)|,(?=\s)")
# Numbers for the last-number fallback. The look-behind keeps us from starting inside a word or
# a number and treats "5-7" as two numbers (the hyphen is a range, not a minus sign).
_NUMBER = re.compile(
    r"(?<![\w./])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d|,\d)"
    r"|(?<![\w./])[-−]?\d+(?:\.\d+)?(?:/\d+)?"
)
_TRIM_CHARS = " \t\r\n.:*$"


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - only the final match is wanted
        pass
    return last


def _matching_braces(text: str, pos: int = 0) -> dict[int, int]:
    """Map the index of every balanced grouping `{` from `pos` on to its `}`, in one pass.

    Braces before `pos` cannot change how later ones pair up, so they are not scanned.
    """
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN.finditer(text, pos):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            match[stack.pop()] = m.start()
    return match


def _extract_boxed(response: str) -> Extraction | None:
    if "\\boxed" not in response:
        return None
    openings = [m.end() - 1 for m in _BOXED.finditer(response)]
    if not openings:
        return None
    # One brace-matching pass for the whole text keeps many unterminated boxes linear, not
    # quadratic (scanning forward from each box would be).
    match = _matching_braces(response, openings[0])
    for brace in reversed(openings):
        close = match.get(brace)
        if close is None:
            continue  # unterminated box: try an earlier one, then fall through
        start, end = brace + 1, close
        text = response[start:end]
        answer = normalize_answer(text)
        if answer is not None:  # an empty box is no answer
            return Extraction(answer, text, "boxed", start, end)
    return None


def _trimmed_span(response: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) past surrounding whitespace, colons, `**`, periods and dollars.

    A leading `$` is kept when it is a currency sign (no closing `$`), so "$1,248.00." keeps its
    dollar in the text shown to the user while the trailing period goes.
    """
    while start < end and response[start] in " \t:*":
        start += 1
    while end > start and response[end - 1] in _TRIM_CHARS:
        end -= 1
    if start < end and response[start] == "$":
        closing = end < len(response) and response[end] == "$"
        if closing or response[start + 1 : end].strip().startswith("\\"):
            start += 1  # inline math `$...$`, not currency
    while start < end and response[start].isspace():
        start += 1
    return start, end


def _line_end(response: str, pos: int) -> int:
    end = response.find("\n", pos)
    return len(response) if end == -1 else end


def _extract_answer_is(response: str) -> Extraction | None:
    last = _last_match(_ANSWER_IS, response)
    if last is None:
        return None
    pos = last.end()
    line_end = _line_end(response, pos)
    clause = _CLAUSE_END.search(response, pos, line_end)
    stop = clause.start() if clause else line_end
    start, end = _trimmed_span(response, pos, stop)
    text = response[start:end]
    answer = normalize_answer(text)
    if answer is None:
        return None
    return Extraction(answer, text, "answer-is", start, end)


def _extract_hashes(response: str) -> Extraction | None:
    pos = response.rfind("####")
    if pos == -1:
        return None
    # The text after the last "####" up to the end of its line (GSM8K's final line).
    start, end = _trimmed_span(response, pos + 4, _line_end(response, pos + 4))
    text = response[start:end]
    answer = normalize_answer(text)
    if answer is None:
        return None
    return Extraction(answer, text, "hashes", start, end)


def _extract_last_number(response: str) -> Extraction | None:
    last = _last_match(_NUMBER, response)
    if last is None:
        return None
    text = last.group()
    answer = normalize_answer(text)
    if answer is None:
        return None
    return Extraction(answer, text, "last-number", last.start(), last.end())


def extract_answer(response: str) -> Extraction:
    """Final answer: last balanced `\\boxed{}`, else "the answer is X", "#### X", last number."""
    if not response:
        return _NONE
    for rule in (_extract_boxed, _extract_answer_is, _extract_hashes, _extract_last_number):
        found = rule(response)
        if found is not None:
            return found
    return _NONE


# --- normalization --------------------------------------------------------------------------

# LaTeX wrappers whose content is the answer itself.
_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|boxed|fbox)\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")  # \frac12, \dfrac34
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")
_VAR_EQUALS = re.compile(r"^[a-zA-Z]\s*=\s*")  # "x = 5" -> "5"
_NUM_CORE = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
# A whole answer that is a number: sign, currency, value, optional /denominator, optional unit.
# Word units ("12 apples", "5 miles per hour") need a space before them so "5i" or "3x" stay
# expressions; %, ° and "percent" are dropped too, so "12%" == "12" (gold sets write either).
_NUMERIC = re.compile(
    rf"^(?P<sign>[-+−]?)\s*(?:[$€£¥]|usd\b)?\s*(?P<sign2>[-+−]?)(?P<num>{_NUM_CORE})"
    rf"(?:\s*/\s*(?P<den>{_NUM_CORE}))?"
    r"\s*(?:%|°|percent\b|(?<=\s)[a-z][a-z .'/-]*)?$",
    re.IGNORECASE,
)
_SPACE_AROUND_SYMBOL = re.compile(r"\s+(?=[^\w\s])|(?<=[^\w\s])\s+")
_MAX_DIGITS = 200  # longer digit runs are not answers; also avoids int() digit limits


def _canonical_number(value: Fraction) -> str:
    """Integer string; a terminating decimal as a plain decimal; otherwise reduced "p/q".

    So "12.50" -> "12.5", "3.0" -> "3", "4/2" -> "2", "1/2" and "0.5" -> "0.5", "2/3" -> "2/3".
    """
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator  # exact: terminating
    digits = str(scaled).rjust(places + 1, "0")
    whole, frac = digits[:-places], digits[-places:].rstrip("0")
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{frac}"


def _parse_number(text: str) -> Fraction | None:
    m = _NUMERIC.match(text)
    if m is None:
        return None
    num, den = m.group("num"), m.group("den")
    if len(num) + len(den or "") > _MAX_DIGITS:
        return None
    try:
        value = Fraction(num.replace(",", ""))
        if den is not None:
            divisor = Fraction(den.replace(",", ""))
            if divisor == 0:
                return None
            value /= divisor
    except (ValueError, ZeroDivisionError):
        return None
    signs = m.group("sign") + m.group("sign2")
    negative = (signs.count("-") + signs.count("−")) % 2
    return -value if negative else value


def _strip_latex(text: str) -> str:
    s = text.replace("**", "")
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "%")
    s = s.replace("\\left", "").replace("\\right", "")
    # Thin/negative spaces (`1\,000` is a LaTeX thousands separator) and `~` vanish.
    s = re.sub(r"\\[,!;: ]|~", "", s)
    s = re.sub(r"\^\s*\{?\\circ\}?", "°", s)
    for _ in range(3):  # wrappers can nest: \text{\textbf{5}}
        s, count = _WRAPPERS.subn(r"\1", s)
        if not count:
            break
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    return s


def _strip_outer_braces(s: str) -> str:
    """`{ {3} }` -> `3`: a LaTeX group around the whole answer only groups."""
    if not s.startswith("{"):
        return s
    match = _matching_braces(s)  # once: re-matching per layer would be quadratic
    i, j = 0, len(s) - 1
    while i < j and s[i] == "{" and match.get(i) == j:
        i, j = i + 1, j - 1
        while i <= j and s[i].isspace():
            i += 1
        while j >= i and s[j].isspace():
            j -= 1
    return s[i : j + 1]


def _parse_value(s: str) -> Fraction | None:
    """A number, or `\\frac{a}{b}` with numeric parts (optionally signed), as an exact value."""
    body = s.lstrip("-−+ ")
    m = _FRAC.fullmatch(body)
    if m is None:
        return _parse_number(s)
    num, den = _parse_number(m.group(1)), _parse_number(m.group(2))
    if num is None or den is None or den == 0:
        return None
    value = num / den
    signs = s[: len(s) - len(body)]
    negative = (signs.count("-") + signs.count("−")) % 2
    return -value if negative else value


def normalize_answer(text: str | None) -> str | None:
    """Canonical form of an answer for comparison; None when empty.

    Numbers lose commas, currency, percent signs and trailing unit words, and are written
    exactly (see `_canonical_number`), so "$1,248.00" == "1248" and "\\frac{1}{2}" == "0.5".
    Anything else is lowercased with whitespace collapsed and dropped around symbols.
    """
    if text is None:
        return None
    s = _strip_latex(text).strip()
    s = _strip_outer_braces(s)
    s = _VAR_EQUALS.sub("", s)
    s = s.strip().rstrip(".").strip()
    if not s:
        return None
    value = _parse_value(s)
    if value is not None:
        return _canonical_number(value)
    s = re.sub(r"\s+", " ", s.lower().replace("−", "-"))
    # "x + 1" and "x+1" are the same expression; word answers keep their single spaces.
    s = _SPACE_AROUND_SYMBOL.sub("", s)
    return s or None


def answers_match(pred: str | None, gold: str) -> bool:
    """True when both sides normalize to the same non-empty answer."""
    if pred is None:
        return False
    left = normalize_answer(pred)
    return left is not None and left == normalize_answer(gold)


def span_logprob(pieces: Sequence[tuple[str, float | None]], start: int, end: int) -> float | None:
    """Mean logprob of the tokens overlapping characters [start, end) of the joined pieces.

    Tokens without a logprob are ignored; None when the span is empty or nothing overlaps.
    """
    if start < 0 or end <= start:
        return None
    total, count, offset = 0.0, 0, 0
    for text, logprob in pieces:
        token_end = offset + len(text)
        if token_end > start and offset < end and text and logprob is not None:
            total += logprob
            count += 1
        offset = token_end
        if offset >= end:
            break
    return total / count if count else None
