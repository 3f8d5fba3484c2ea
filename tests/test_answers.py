"""Answer extraction, normalization, matching and answer-span logprobs."""

from __future__ import annotations

import pytest

from mstui.core.answers import (
    Extraction,
    answers_match,
    extract_answer,
    normalize_answer,
    span_logprob,
)


def check(response: str, answer: str | None, text: str | None, rule: str) -> Extraction:
    got = extract_answer(response)
    assert (got.answer, got.text, got.rule) == (answer, text, rule)
    if text is None:
        assert (got.start, got.end) == (-1, -1)
    else:
        # The span always points at exactly the text shown to the user.
        assert response[got.start : got.end] == text
    return got


# --- \boxed{} -------------------------------------------------------------------------------


def test_boxed_nested_fraction() -> None:
    check(r"So the result is \boxed{\frac{1}{2}}.", "0.5", r"\frac{1}{2}", "boxed")


def test_boxed_inner_group_braces() -> None:
    check(r"\boxed{ {3} }", "3", " {3} ", "boxed")


def test_boxed_last_wins() -> None:
    got = check(r"First \boxed{12}, then \boxed{15}. Finally \boxed{18}", "18", "18", "boxed")
    assert got.start == 50


def test_boxed_unterminated_falls_back_to_earlier_box() -> None:
    check(r"\boxed{5} but wait \boxed{7", "5", "5", "boxed")


def test_boxed_only_unterminated_falls_through() -> None:
    check(r"We get 41. \boxed{42", "42", "42", "last-number")
    check(r"\boxed{\frac{1}{2} so the answer is 9", "9", "9", "answer-is")


def test_boxed_empty_is_no_answer() -> None:
    check(r"\boxed{}", None, None, "none")
    check(r"\boxed{6} then \boxed{ }", "6", "6", "boxed")


def test_boxed_escaped_braces_do_not_count() -> None:
    check(r"\boxed{\{1,2\}}", r"\{1,2\}", r"\{1,2\}", "boxed")


def test_boxed_space_before_brace_and_unit() -> None:
    check(r"\boxed {1,248 \text{ dollars}}", "1248", r"1,248 \text{ dollars}", "boxed")


def test_boxed_beats_answer_is() -> None:
    check(r"\boxed{4}. The answer is 5.", "4", "4", "boxed")


def test_stray_closing_braces_before_box() -> None:
    check(r"}} {\boxed{-3}} }", "-3", "-3", "boxed")


# --- "the answer is" ------------------------------------------------------------------------


def test_answer_is_currency_commas_trailing_zeros() -> None:
    check("The answer is $1,248.00.", "1248", "$1,248.00", "answer-is")


def test_answer_is_bold_and_case() -> None:
    check("so THE ANSWER IS **72**.\nThanks", "72", "72", "answer-is")


def test_answer_is_last_occurrence_and_clause_end() -> None:
    check("The answer is 5. No, the answer is 12, which is more", "12", "12", "answer-is")


def test_answer_is_colon_inline_math() -> None:
    check(r"The final answer is: $\frac{3}{4}$.", "0.75", r"\frac{3}{4}", "answer-is")


def test_answer_is_decimal_is_not_a_sentence_end() -> None:
    check("The answer is 3.5 apples. Then 9", "3.5", "3.5 apples", "answer-is")


def test_answer_is_empty_falls_through() -> None:
    check("We found 7 so the answer is\n", "7", "7", "last-number")


def test_answer_is_text_answer() -> None:
    check("The answer is New  York.", "new york", "New  York", "answer-is")


def test_answer_is_expression_then_equals_takes_the_value() -> None:
    # The working before the last `=` is not the answer; the value after it is.
    check("the answer is indeed 6*7 = 42.", "42", "42", "answer-is")
    check("The answer is 3 + 4 = 7, which I checked", "7", "7", "answer-is")
    check("The answer is 2 * 3 = 3 + 3 = 6", "6", "6", "answer-is")
    check(r"The final answer is $6 \times 7 = 42$.", "42", "42", "answer-is")
    check(r"The answer is $\frac{6}{4} = \frac{3}{2}$.", "1.5", r"\frac{3}{2}", "answer-is")
    check("The answer is x = 5.", "5", "5", "answer-is")


def test_answer_is_skips_words_that_only_qualify_it() -> None:
    # "indeed", "clearly", … say how sure the model is, not what the answer is.
    check("The answer is indeed 42.", "42", "42", "answer-is")
    check("So the answer is clearly 12.", "12", "12", "answer-is")
    check("The answer is indeed -3/4.", "-0.75", "-3/4", "answer-is")
    check("The answer is indeed 1,000.", "1000", "1,000", "answer-is")
    check("The final answer is therefore: $\\frac{1}{2}$", "0.5", "\\frac{1}{2}", "answer-is")
    check("The answer is just New York.", "new york", "New York", "answer-is")


def test_answer_is_comparisons_are_not_results() -> None:
    # `>=`, `<=`, `!=` and `==` are not "= value": the whole span stays the answer.
    check("The answer is x >= 5.", "x>=5", "x >= 5", "answer-is")
    check("The answer is a != b.", "a!=b", "a != b", "answer-is")
    # Nothing after the `=`: the span is kept as it was.
    check("The answer is 6*7 =.", "6*7=", "6*7 =", "answer-is")


# --- "####" ---------------------------------------------------------------------------------


def test_gsm8k_hashes() -> None:
    check("She has 8*9 = 72 eggs.\n#### 72", "72", "72", "hashes")


def test_hashes_with_commas_and_trailing_text() -> None:
    check("#### 1,000\nand then #### $2,500.50 \n", "2500.5", "$2,500.50", "hashes")


# --- last number ----------------------------------------------------------------------------


def test_last_number_commas() -> None:
    check("I count 1,234,567 grains", "1234567", "1,234,567", "last-number")


def test_last_number_negative_and_unicode_minus() -> None:
    check("Temperature went from 3 to -7", "-7", "-7", "last-number")
    check("x = −12 here", "-12", "−12", "last-number")


def test_last_number_range_hyphen_is_not_minus() -> None:
    check("It costs 5-7 dollars", "7", "7", "last-number")


def test_last_number_list_and_decimal_and_fraction() -> None:
    check("values 1,2,3", "3", "3", "last-number")
    check("half is 0.50.", "0.5", "0.50", "last-number")
    check("take 3/4 of it", "0.75", "3/4", "last-number")


def test_no_answer_and_empty() -> None:
    check("I don't know.", None, None, "none")
    check("", None, None, "none")
    assert extract_answer("") == Extraction(None, None, "none", -1, -1)


# --- performance ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        "Let me think step by step. 12 + 30 = 42, so 1,234 apples. " * 3500,
        ("\\boxed{\\frac{1}{2}} and {x} " * 8000) + "The answer is 9",
        "\\boxed{" * 28000,
        "the answer is " * 14000,
        "#### \n" * 33000,
        "1" * 200_000,
        "- " * 100_000,
        "$1 $2 " * 34_000,
        "\\( " * 66_000,
        "\\[" * 100_000,
    ],
    ids=["prose", "many-boxes", "unterminated", "answer-is", "hashes", "digits", "minuses",
         "dollars", "open-parens", "open-brackets"],
)
def test_200kb_pathological_responses_extract_consistently(response: str) -> None:
    # No catastrophic backtracking (bench/bench_core.py times these same inputs); here the
    # extraction must stay self-consistent on them.
    assert len(response) >= 195_000
    ext = extract_answer(response)
    if ext.rule == "none":
        assert ext.answer is None and ext.text is None and (ext.start, ext.end) == (-1, -1)
    else:
        assert ext.text == response[ext.start:ext.end] and ext.answer is not None


# --- normalize_answer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,248", "1248"),
        ("$12", "12"),
        ("12 dollars", "12"),
        ("12 apples", "12"),
        ("12%", "12"),
        ("10\\%", "10"),
        ("5 miles per hour", "5"),
        ("12.50", "12.5"),
        ("3.0", "3"),
        ("12.", "12"),
        (".5", "0.5"),
        ("+5", "5"),
        ("-7", "-7"),
        ("−7", "-7"),
        ("-0", "0"),
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac12", "0.5"),
        ("\\tfrac{3}{6}", "0.5"),
        ("-\\frac{3}{6}", "-0.5"),
        ("\\frac{-3}{6}", "-0.5"),
        ("4/2", "2"),
        ("2/3", "2/3"),
        ("6/9", "2/3"),
        ("\\frac{4}{6}", "2/3"),
        ("0.125", "0.125"),
        ("\\text{ 5 }", "5"),
        ("\\$5", "5"),
        ("$5$", "5"),
        ("1\\,000", "1000"),
        ("**42**", "42"),
        ("x = 5", "5"),
        ("90^\\circ", "90"),
        ("\\boxed{7}", "7"),
        ("{ {3} }", "3"),
        ("New  York", "new york"),
        ("x + 1", "x+1"),
        ("5i", "5i"),
        ("1/0", "1/0"),
        ("\\frac{x}{2}", "\\frac{x}{2}"),
        ("", None),
        ("   ", None),
        (".", None),
        ("$", None),
    ],
)
def test_normalize(raw: str, expected: str | None) -> None:
    assert normalize_answer(raw) == expected


def test_normalize_huge_number_is_kept_as_text() -> None:
    digits = "9" * 5000  # past Python's int-string limit; must not raise
    assert normalize_answer(digits) == digits


def test_answers_match() -> None:
    assert answers_match("$1,248.00", "1248")
    assert answers_match("0.5", "1/2")
    assert answers_match("\\frac{2}{4}", "0.50")
    assert answers_match("12%", "12")
    assert answers_match("−7", "-7")
    assert not answers_match("7", "-7")
    assert not answers_match("1/3", "0.333")
    assert not answers_match(None, "5")
    assert not answers_match("", "")
    assert not answers_match("5", "")


# --- span_logprob ---------------------------------------------------------------------------


PIECES: list[tuple[str, float | None]] = [
    ("The", -0.5),
    (" answer", -1.0),
    (" is", -2.0),
    (" 1", -3.0),
    ("2", None),
    ("48", -5.0),
    (".", -6.0),
]


def test_span_logprob_overlapping_tokens() -> None:
    response = "".join(text for text, _ in PIECES)
    got = extract_answer(response)
    assert (got.text, got.start, got.end) == ("1248", 14, 18)
    # " 1", "2" (no logprob, ignored) and "48" overlap characters 14..18.
    assert span_logprob(PIECES, got.start, got.end) == pytest.approx(-4.0)


def test_span_logprob_partial_overlap_and_edges() -> None:
    assert span_logprob(PIECES, 0, 1) == pytest.approx(-0.5)
    assert span_logprob(PIECES, 2, 4) == pytest.approx(-0.75)  # "e" of The, " " of answer
    assert span_logprob(PIECES, 15, 16) is None  # only the token without a logprob
    assert span_logprob(PIECES, 5, 5) is None
    assert span_logprob(PIECES, -1, -1) is None
    assert span_logprob(PIECES, 100, 200) is None
    assert span_logprob([], 0, 3) is None
    assert span_logprob([("", -1.0), ("ab", -2.0)], 0, 1) == pytest.approx(-2.0)


# --- extraction and normalization fixed by kind (issue 15) ----------------------------------


def test_latex_thousands_separator() -> None:
    check(r"So there are \boxed{14{,}916} ways.", "14916", "14{,}916", "boxed")
    check("In all we get 14{,}916 ways", "14916", "14{,}916", "last-number")
    assert normalize_answer(r"\boxed{14{,}916}") == "14916"
    assert answers_match(r"9{,}500", "9500")


def test_trailing_fraction_is_read_whole() -> None:
    check(r"Dividing, x = \frac{10}{9}", "10/9", r"\frac{10}{9}", "last-number")
    check(r"so the ratio is -\dfrac{3}{4}", "-0.75", r"-\dfrac{3}{4}", "last-number")
    # A subtraction is not a negative fraction: the minus with a space stays outside.
    check(r"we get 2 - \frac{1}{2}", "0.5", r"\frac{1}{2}", "last-number")


def test_later_final_answer_beats_an_earlier_box() -> None:
    response = r"First \boxed{5}. Checking again, 6 is right. The final answer is 6."
    check(response, "6", "6", "answer-is")
    # A box after the phrase is still the box; a plain "the answer is" after a box is not a
    # conclusion and leaves the box standing.
    check(r"The final answer is $\boxed{6}$.", "6", "6", "boxed")
    check(r"\boxed{4}. The answer is 5.", "4", "4", "boxed")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"\sqrt3", r"\sqrt{3}"),
        (r"\sqrt 2+\sqrt 5", r"\sqrt{2}+\sqrt{5}"),
        (r"\frac{3}{4}\textnormal{ miles}", "0.75"),
        (r"\frac{1}{2} \text{ cm}", "0.5"),
        (r"\left( \frac{1}{3} \right)", "1/3"),
        (r"\cfrac{1}{3}", "1/3"),
        (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}"),
        ("(1, 2)", "(1, 2)"),  # parentheses around a pair are not a grouping
        ("32, 349", "32, 349"),  # a list, never the number 32349
    ],
)
def test_normalize_latex_forms(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_match_kinds_from_the_reasoning_issue() -> None:
    assert answers_match(r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}")
    assert answers_match(r"\boxed{9{,}500}", "9500")
    assert answers_match(r"\sqrt3", r"\sqrt{3}")
    assert answers_match(r"\sqrt 2+\sqrt 5", r"\sqrt{2}+\sqrt{5}")


def test_normalization_is_idempotent_and_lists_stay_lists() -> None:
    # Normalizing twice used to read "32, 349" as "32,349", then as the number 32349.
    assert not answers_match("32, 349", "32349")
    assert not answers_match(normalize_answer("32, 349"), "32349")
    samples = [
        "32, 349", "x = y = 5", "1 /2", r"\left( \frac{1}{3} \right)", r"\sqrt 2+\sqrt 5",
        "12 apples", "$1,248.00", r"\{1, 2\}", "New  York", "x + 1", "(1, 2)", "a = b",
        r"\text{\textbf{5}}", "- 7", "1 , 000", "3 . 5", r"\frac{-3}{6}", "9" * 300, "",
    ]
    for raw in samples:
        once = normalize_answer(raw)
        assert normalize_answer(once) == once, raw


# --- LaTeX math spans -----------------------------------------------------------------------


def test_last_math_span_is_the_answer() -> None:
    check("The solution set is $[0,1)$.", "[0,1)", "[0,1)", "latex")
    check(r"Therefore \(x \geq 5\) is the solution.", r"x\geq 5", r"x \geq 5", "latex")
    check("We get\n$$\n(7, 6)\n$$\nas the pair", "(7, 6)", "(7, 6)", "latex")
    # A number written after the span is later, so it wins; one inside the span is part of it.
    check("Let $x$ be the apples: 3 + 4 = 7", "7", "7", "last-number")


def test_dollars_that_are_prices_are_not_math() -> None:
    check("It costs $5 and then $6 more, so 11", "11", "11", "last-number")
    check("She pays $12. Then $3 later.", "3", "3", "last-number")
    check("The answer is $1,248.00.", "1248", "$1,248.00", "answer-is")


def test_answer_is_takes_a_math_span_whole() -> None:
    # Its comma used to end the clause: "\((-6".
    check(r"Final Answer: The final answer is \((-6, 10)\). I hope it is correct.",
          "(-6, 10)", "(-6, 10)", "answer-is")
    check(r"The final answer is $28 \%$.", "28", r"28 \%", "answer-is")


def test_leading_dot_decimal_is_a_number() -> None:
    check("so it is .4", "0.4", ".4", "last-number")
    check("pi is about 3.14", "3.14", "3.14", "last-number")  # ".14" is not a number of its own
