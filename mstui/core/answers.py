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
    rule: str  # "boxed" | "answer-is" | "hashes" | "latex" | "last-number" | "none"
    start: int
    end: int


_NONE = Extraction(answer=None, text=None, rule="none", start=-1, end=-1)

# --- extraction -----------------------------------------------------------------------------

_BOXED = re.compile(r"\\boxed\s*\{")
# Grouping braces only: `\\` is consumed first so `\\{` still opens a group, while the LaTeX
# literals `\{` and `\}` never count towards balance.
_BRACE_TOKEN = re.compile(r"\\\\|\\[{}]|[{}]")
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b", re.IGNORECASE)
# "The final answer is X" is a conclusion: written after a box, it replaces the boxed answer (a
# model that boxed a step and then concluded). A plain "the answer is" after a box stays narration.
_FINAL_ANSWER_IS = re.compile(r"\bthe\s+final\s+answer\s+is\b", re.IGNORECASE)
# Words between "the answer is" and the answer that only qualify it (one or more, any case).
_FILLER = re.compile(
    r"(?:(?:indeed|clearly|simply|just|therefore|thus|then|now|actually|really|definitely|"
    r"certainly|exactly|obviously|still|also|surely|equal\s+to|equals|approximately|about|"
    r"roughly|precisely)\b[\s,:]*)+", re.IGNORECASE)
# A sentence/clause ends at . ! ? ; followed by whitespace or the end, or at ", " (thousands
# separators never have a space after the comma, so "1,248" survives).
_CLAUSE_END = re.compile(r"[.!?;](?=\s|$)|,(?=\s)")
# Numbers for the last-number fallback. The look-behind keeps us from starting inside a word or
# a number and treats "5-7" as two numbers (the hyphen is a range, not a minus sign). A LaTeX
# fraction of numbers is one number, read whole (so "= \frac{10}{9}" is 10/9, not its last 9),
# and `{,}` is LaTeX's thousands separator ("14{,}916").
_FRAC_NUMBER = (
    r"[-−]?\\[dtc]?frac\s*"
    r"(?:\{\s*[-−]?\d+(?:\.\d+)?\s*\}\s*\{\s*\d+(?:\.\d+)?\s*\}|\d\d(?!\d))"
)
_NUMBER = re.compile(
    rf"{_FRAC_NUMBER}"
    r"|(?<![\w./])[-−]?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?(?!\d|,\d)"
    r"|(?<![\w./])[-−]?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?"
)
_TRIM_CHARS = " \t\r\n.:*$"
# An `=` that states a result ("6*7 = 42"), not one inside `<=`, `>=`, `!=` or `==`.
_RESULT_EQUALS = re.compile(r"(?<![<>!=])=(?!=)")


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


def _extract_answer_is(
    response: str, pattern: re.Pattern[str] = _ANSWER_IS, after: int = 0
) -> Extraction | None:
    last = _last_match(pattern, response)
    if last is None or last.start() < after:
        return None
    pos = last.end()
    # "The final answer is $(-6, 10)$.": a math span is the answer whole; its commas do not
    # end the clause.
    head = pos
    while head < len(response) and response[head] in " \t:*":
        head += 1
    # "the answer is indeed 42", "… is clearly 12": the adverb is not part of the answer.
    filler = _FILLER.match(response, head)
    if filler is not None:
        head = pos = filler.end()
    opener = _MATH_OPEN.match(response, head)
    span = _math_span(response, opener) if opener is not None else None
    if span is not None and span[0] < span[1]:
        start, end = _after_result_equals(response, span[0], span[1])
        text = response[start:end]
        answer = normalize_answer(text)
        if answer is not None:
            return Extraction(answer, text, "answer-is", start, end)
    line_end = _line_end(response, pos)
    clause = _CLAUSE_END.search(response, pos, line_end)
    stop = clause.start() if clause else line_end
    start, end = _after_result_equals(response, *_trimmed_span(response, pos, stop))
    text = response[start:end]
    answer = normalize_answer(text)
    if answer is None:
        return None
    return Extraction(answer, text, "answer-is", start, end)


def _after_result_equals(response: str, start: int, end: int) -> tuple[int, int]:
    """The value after the last result `=` in [start, end), when there is one: "the answer is
    indeed 6*7 = 42" states 42, and the words and working before the `=` are not the answer."""
    last = _last_match(_RESULT_EQUALS, response[start:end])
    if last is None:
        return start, end
    lo, hi = _trimmed_span(response, start + last.end(), end)
    if lo >= hi or normalize_answer(response[lo:hi]) is None:
        return start, end  # "x =" with nothing after it: keep the whole span
    return lo, hi


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


# Openers of LaTeX math: display `$$…$$` and `\\[…\\]`, inline `\\(…\\)` and `$…$`.
_MATH_OPEN = re.compile(r"\$\$|\\\[|\\\(|(?<!\\)\$")
_MATH_CLOSE = {"$$": "$$", "\\[": "\\]", "\\(": "\\)"}


def _inline_close(response: str, pos: int) -> int | None:
    """The closing `$` of an inline span opened before `pos`: unescaped, on the same line."""
    line_end = _line_end(response, pos)
    while True:
        end = response.find("$", pos, line_end)
        if end == -1:
            return None
        if response[end - 1] != "\\":
            return end
        pos = end + 1


def _math_span(response: str, opener: re.Match[str]) -> tuple[int, int, int] | None:
    """(content start, content end, resume at) of the math span `opener` opens; None when it
    does not close, or when a `$…$` pair is two prices: a closing `$` followed by a digit
    ("$5 and $6") is currency, and the caller resumes at it, since it may open a span itself."""
    start = opener.end()
    if opener.group() == "$":
        end = _inline_close(response, start)
        if end is None:
            return None
        after = end + 1
        if response[after : after + 1].isdigit():
            return end, end, end  # empty: not math
    else:
        end = response.find(_MATH_CLOSE[opener.group()], start)
        if end == -1:
            return None
        after = end + len(_MATH_CLOSE[opener.group()])
    while start < end and response[start].isspace():
        start += 1
    while end > start and response[end - 1].isspace():
        end -= 1
    return start, end, after


def _extract_math(response: str) -> Extraction | None:
    """The content of the last LaTeX math span (`$[0,1)$`, `\\(x \\geq 5\\)`)."""
    if "$" not in response and "\\(" not in response and "\\[" not in response:
        return None
    last: tuple[int, int] | None = None
    pos = 0
    unclosed: set[str] = set()  # display/`\\(` openers with no closer left: skip the rest
    while (m := _MATH_OPEN.search(response, pos)) is not None:
        span = None if m.group() in unclosed else _math_span(response, m)
        if span is None:
            if m.group() != "$":  # `$` closes per line; the others search to the end once
                unclosed.add(m.group())
            pos = m.end()
            continue
        lo, hi, pos = span
        if lo < hi:
            last = (lo, hi)
    if last is None:
        return None
    text = response[last[0] : last[1]]
    answer = normalize_answer(text)
    if answer is None:
        return None
    return Extraction(answer, text, "latex", last[0], last[1])


def extract_answer(response: str) -> Extraction:
    """Final answer: last balanced `\\boxed{}`, else "the answer is X", "#### X", else the last
    LaTeX math span or the last number, whichever is later.

    One exception to that order: "the final answer is X" written after the last box wins over
    the box, since the model concluded after boxing.
    """
    if not response:
        return _NONE
    boxed = _extract_boxed(response)
    if boxed is not None:
        later = _extract_answer_is(response, _FINAL_ANSWER_IS, after=boxed.end)
        return later if later is not None else boxed
    for rule in (_extract_answer_is, _extract_hashes):
        found = rule(response)
        if found is not None:
            return found
    # The last LaTeX math span or the last number, whichever comes later: a number inside the
    # span ("$x \\geq 5$") is part of it, one written after it ("let $x$ be …, so 7") is not.
    math, number = _extract_math(response), _extract_last_number(response)
    if math is not None and (number is None or number.start < math.end):
        return math
    return number or _NONE


# --- normalization --------------------------------------------------------------------------

# LaTeX wrappers whose content is the answer itself.
_WRAPPERS = re.compile(
    r"\\(?:text|textnormal|textbf|textit|textrm|textsf|textup|mathrm|mathbf|mathit|mathsf|mbox"
    r"|boxed|fbox)\s*\{([^{}]*)\}"
)
_FRAC_SHORT = re.compile(r"\\[dtc]?frac\s*(\d)\s*(\d)")  # \frac12, \dfrac34
_FRAC_KIND = re.compile(r"\\[dtc]frac(?![a-zA-Z])")  # \dfrac, \tfrac and \cfrac are \frac
_FRAC = re.compile(r"\\frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")
# `\sqrt3`, `\sqrt 2`: without braces TeX takes the next character as the argument.
_SQRT_BARE = re.compile(r"\\sqrt\s*([0-9a-zA-Z])")
_THOUSANDS_BRACES = re.compile(r"(?<=\d)\{,\}(?=\d)")  # LaTeX's `14{,}916`
_VAR_EQUALS = re.compile(r"^[a-zA-Z]\s*=\s*")  # "x = 5" -> "5"
_NUM_CORE = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
# What may follow a number and be dropped: %, °, "percent", or a word unit. Word units ("12
# apples", "5 miles per hour") need a space before them so "5i" or "3x" stay expressions; %
# goes too, so "12%" == "12" (gold sets write either).
_UNIT = r"\s*(?:%|°|percent\b|(?<=\s)[a-z][a-z .'/-]*)?"
# A whole answer that is a number: sign, currency, value, optional /denominator, optional unit.
_NUMERIC = re.compile(
    rf"^(?P<sign>[-+−]?)\s*(?:[$€£¥]|usd\b)?\s*(?P<sign2>[-+−]?)(?P<num>{_NUM_CORE})"
    rf"(?:\s*/\s*(?P<den>{_NUM_CORE}))?{_UNIT}$",
    re.IGNORECASE,
)
_UNIT_ONLY = re.compile(rf"{_UNIT}$", re.IGNORECASE)  # after a fraction: "\frac{3}{4} miles"
# Spaces around symbols go ("x + 1" is "x+1"), except around commas: "32, 349" is a list, and
# joining it into "32,349" would make a second pass read the number 32349.
_SPACE_AROUND_SYMBOL = re.compile(r"\s+(?=[^\w\s,])|(?<=[^\w\s,])\s+")
_MAX_PASSES = 8  # normalization repeats until nothing changes; real answers settle in 2
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
    # Before the wrappers: their content may not hold braces, and `{,}` is just a separator.
    s = _THOUSANDS_BRACES.sub("", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    # Thin/negative spaces (`1\,000` is a LaTeX thousands separator) and `~` vanish.
    s = re.sub(r"\\[,!;: ]|~", "", s)
    s = re.sub(r"\^\s*\{?\\circ\}?", "°", s)
    for _ in range(3):  # wrappers can nest: \text{\textbf{5}}
        s, count = _WRAPPERS.subn(r"\1", s)
        if not count:
            break
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_KIND.sub(r"\\frac", s)
    s = _SQRT_BARE.sub(r"\\sqrt{\1}", s)
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


def _unwrap_parens(s: str) -> str:
    """`( \\frac{1}{3} )` -> `\\frac{1}{3}`: parentheses around the whole answer only group.

    Only called where the content must then read as one number, so `(1, 2)` is never changed
    into something else.
    """
    while len(s) >= 2 and s[0] == "(" and s[-1] == ")":
        depth = 0
        for i, ch in enumerate(s):
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and i < len(s) - 1:
                return s  # "(1)+(2)": the first parenthesis closes early
        s = s[1:-1].strip()
    return s


def _parse_value(s: str) -> Fraction | None:
    """A number, or `\\frac{a}{b}` with numeric parts (optionally signed, optionally with a unit
    after it), either possibly in one pair of parentheses, as an exact value."""
    s = _unwrap_parens(s)
    body = s.lstrip("-−+ ")
    m = _FRAC.match(body)
    if m is None or _UNIT_ONLY.match(body, m.end()) is None:
        return _parse_number(s)
    num, den = _parse_number(m.group(1)), _parse_number(m.group(2))
    if num is None or den is None or den == 0:
        return None
    value = num / den
    signs = s[: len(s) - len(body)]
    negative = (signs.count("-") + signs.count("−")) % 2
    return -value if negative else value


def _normalize_once(text: str) -> str | None:
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


def normalize_answer(text: str | None) -> str | None:
    """Canonical form of an answer for comparison; None when empty. Idempotent.

    Numbers lose commas, currency, percent signs and trailing unit words, and are written
    exactly (see `_canonical_number`), so "$1,248.00" == "1248" and "\\frac{1}{2}" == "0.5".
    Anything else is lowercased with whitespace collapsed and dropped around symbols.
    """
    if text is None:
        return None
    s = _normalize_once(text)
    # The text form of one pass can read differently to the next ("x = y = 5" loses one "x ="
    # per pass), so passes repeat until nothing changes: a verdict must never depend on how many
    # times a value was normalized on its way (the loop used to normalize answers twice).
    for _ in range(_MAX_PASSES):
        if s is None:
            return None
        again = _normalize_once(s)
        if again == s:
            break
        s = again
    return s


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
