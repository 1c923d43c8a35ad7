"""Answer extraction from model output, and verification against a reference answer.

The grade is a training reward, so it is written against outputs that try to earn it without
committing to one right answer. The rules:

1. The final claim counts, and it must be ONE answer. A claim is a `\\boxed{...}` / `\\fbox{...}`,
   `#### x`, "(final) answer is / answer: / answer =", or a correction such as "wait, actually it's
   x". The last claim wins (a self-correction counts the corrected value; boxes before the last one
   are intermediate results); a claim that states no value ("the answer is correct") is skipped.
   With no claim, the last number after the last skipped claim is the answer, read with the
   expression around it ("7 * 2 = 14" → 14, "2^{3}"); for a letter or word reference, a short last
   line ("(C)", "even") is.
2. A final claim that hedges ("maybe", "probably", "could be", a "?", and approximations:
   "approximately", "about", "≈", "~", "-ish", "or so", "at least") is "hedged"; one that holds
   several values ("5 or 6", "5, 6", "{5, 6}", "5 ± 1", "5 & 6", a bare list "1 2 3", ranges "5-6",
   "5 to 6", "between 5 and 6") is "multiple answers", unless the reference is itself a list, set,
   tuple or interval; one that is negated ("not 42", "isn't 42", "≠ 42", "5, not 6") is "negated".
   Approximations are hedges because the comparison is exact: "≈ 3.14" does not commit to a value -
   unless the question asks for a rounded value ("to the nearest tenth", "estimate", "about how
   many"), where "≈ 0.43" is the value asked for.
   Before the claim, in its clause: "maybe", "could be", "not", "either", "between" right before it
   hedge, negate or multiply it; "5 or \\boxed{6}" and "\\boxed{5} and \\boxed{6}" are several values.
   But a modal that is not "be" ("Kim could buy \\boxed{30}"), a negation with a preposition ("did
   not work for \\boxed{6} days"), or "between" with words before the claim ("the angle between the
   lines is \\boxed{90}") does not govern it; and "or" / "and" after something that is not another
   answer restates or goes on: a value equal to the claim ("\\frac{72}{6} or \\boxed{12}", "0.65, or
   \\boxed{65\\%}", rounded as asked), a description ("the reciprocal of 5/4, or", "4s, or", "3/4
   minutes or \\boxed{45} seconds"), a relation or equation ("x/3 = 3 and \\boxed{x = 9}"), or a value
   copied from the question.
   After a box, the rest of its sentence describes the value ("\\boxed{3} students taking neither",
   "the \\boxed{3} factors 10, 25 and 50"): only what attaches to the box itself counts - a
   separator, another value, a hedge, a negation of a value or of its being right ("\\boxed{5}, 6",
   "\\boxed{5} or 6", "\\boxed{5}, probably", "\\boxed{42}, not 41", "\\boxed{42} is wrong"); the
   speaker's doubt ("probably", "I think") and a "?" count anywhere in it.
   After the claim's sentence, notes, remarks and checks do not change it ("(Note that this is a
   maximum, not a minimum.)", "We may check our answer: 17 * 44 = 748 ≡ 1"), but a retraction
   ("that's wrong", "just kidding", also ", which is wrong") is "negated", doubt ("I might be wrong")
   or another value floated right after "or", "maybe", "wait", "actually", ... at a sentence start
   ("Or maybe 6.", "Wait, 6.") is "hedged", and a last sentence that ends on another number stated as
   a result ("But I compute 20.", "5 + 8 = 13", "Final: 13") leaves "multiple answers" (asked: "13?",
   "hedged"; denying the claim: "It's 13, not 12.", "negated"). A check computed from the claimed
   value ("12 + 1 = 13"), or an equation naming another quantity ("a = 147"), is no result. Words
   inside a claim that the reference itself holds (`\\text{not possible}`) do not count against it.
3. Text quoted from the question never counts: a claim that appears verbatim in the question, and a
   bare number inside a run of three tokens copied from it, are skipped. Neither do claims that are
   someone else's ("Tom says the answer is 12", "the problem states 18", "according to the book,
   the answer is 18", "the answer is 18, as the problem says", "you said 18", "given answer 18"),
   an answer being checked ("check our answer: ...") or asked ("Is the answer 24?"); no number read
   in their place reaches back into them. Sentences addressed to a grader ("grader", "the
   reference", "instructions", "answer key", "expected answer", "mark it correct", ...; not "8th
   graders") are blanked before anything is read, to the end of their sentence or bracket (or a
   "but").
4. Numbers are exact: signs (also "- 7", and in words before a number: "minus 5", "negative 5",
   "positive 5"; numbers in words are not read), thousands separators ("1,234"; "1 234" in a claim;
   "32,\\!348"), decimals, fractions, mixed numbers ("3 1/2", "3\\frac{1}{2}", "3½"), scientific
   notation ("1.5e3", "1.5 \\times 10^{3}", "1E+400"), `\\frac`. A percent sign is a unit and is
   dropped ("50%" equals "50", not "0.5"), as are `$`, degrees, units and trailing words ("42
   apples"). A comma before other than three digits separates values ("3,5" is two values), and a
   bare difference of two numbers is a range. "a = b = c" answers c.
5. The reference decides how the answer is read and compared: numbers exactly; a multiple-choice
   letter A-H ("C", "(C)", `\\text{(C)}`, `\\textbf{(C) }5`) by its letter; a word or name
   (`\\text{even}`, "Alice") as normalised text; anything else (expressions, sets, intervals) by text
   identity, then math-verify; a claim whose text is the reference's is correct. A reference
   solution so grades correct against its own boxed answer (benchmarks/reference_solutions.py
   checks GSM8K and MATH); one that boxes two alternatives ("\\boxed{3} or \\boxed{\\frac{2}{5}}")
   does not, whatever its answer field picked.
6. Work is bounded. Unicode is normalised first (full-width and non-Latin digits become ASCII;
   superscripts become `^{...}`, so "2³" is 2^3, never 23). A response over MAX_RESPONSE_CHARS is
   "too long"; claims are found with linear-time regexes over the whole text, then each is read in
   a bounded window. Expressions reach sympy only after cheap checks: power towers and powers,
   factorials or binomials of more than MAX_POWER_DIGITS digits, big powers of expressions, deep
   nesting, sums, integrals and limits are "too complex"; over MAX_SYMBOLIC_CHARS they are compared
   as text only. math-verify's own signal-based timeouts are off (they fail outside the main
   thread); `coevo.tasks.verifier.Verifier` runs grades in killable processes as the last defence.

Failure kinds (FAILURES): "empty", "too long", "no answer found", "hedged", "multiple answers",
"negated", "too complex", "wrong answer"; the Verifier adds "timeout" (a grade ran past its time
limit), "out of memory" (a grade passed the worker's memory limit) and "grader error" (the grader
raised, or its process died). Those three are not verdicts: `Grade.graded` is False for them.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

# Longer responses are rejected outright ("too long"): about 50,000 tokens, far more than any
# max_tokens used here. Reading scales linearly up to it (about 0.1 s at the limit).
MAX_RESPONSE_CHARS = 200_000
# math-verify runs with its timeouts off, so its input is bounded: longer expressions are compared
# as text and never reach sympy.
MAX_SYMBOLIC_CHARS = 300
# Largest number (in decimal digits) that a literal, a power or a factorial may denote before the
# answer is "too complex"; Python refuses int/str conversions past 4,300 digits anyway.
MAX_POWER_DIGITS = 4_000
# A box's content, and the text read after an answer marker, are at most this long.
MAX_BOX_CHARS = 2_000
CLAIM_WINDOW = 400
# Clause context read before a claim, and how many claims / bare numbers are tried from the end.
LOOKBACK = 300
MAX_CLAIMS = 64
MAX_FALLBACK_NUMBERS = 32
# Longest last line read as a bare letter or word answer when there is no claim.
MAX_BARE_CHARS = 40
# The question is only searched for restated text; a longer one is cut.
MAX_QUESTION_CHARS = 50_000

FAILURES = (
    "empty",
    "too long",
    "no answer found",
    "hedged",
    "multiple answers",
    "negated",
    "too complex",
    "wrong answer",
    "timeout",
    "grader error",
    "out of memory",
)
# Failure kinds that are not a verdict: nobody judged the answer (the grade ran past its time
# limit, the grader raised or ran out of memory). Such an attempt is "ungraded": it is never a
# training label, and accuracies leave it out (and report it beside them).
UNGRADED_FAILURES = frozenset({"timeout", "grader error", "out of memory"})


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool
    reward: float
    # One of FAILURES; None when correct.
    failure: str | None
    # Why an ungraded attempt got no verdict (the grader's exception, the time limit), else None.
    detail: str | None = None

    @property
    def graded(self) -> bool:
        """Whether this is a verdict (correct or not), as opposed to a grade nobody could make."""
        return self.failure not in UNGRADED_FAILURES


def failed(failure: str, extracted: str | None = None, detail: str | None = None) -> Grade:
    """An incorrect grade with its failure kind (one of FAILURES)."""
    return Grade(extracted, False, 0.0, failure, detail)


class _TooComplex(Exception):
    """An answer whose value is too large or too costly to compare (power towers, 10^100000!)."""


# ---------------------------------------------------------------------------------------------
# Normalisation

_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni", strict=True))
_SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()", strict=True))
_SUPERSCRIPT_RE = re.compile(f"[{''.join(_SUPERSCRIPTS)}]+")
_SUBSCRIPT_RE = re.compile(f"[{''.join(_SUBSCRIPTS)}]+")
_VULGAR_FRACTION_RE = re.compile("[\u00bc-\u00be\u2150-\u215e\u2189]")
# Zero-width and bidi-control characters: invisible, so they must not split or join tokens.
_INVISIBLE_RE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
# Hyphen-like minus signs become "-"; the fraction slash of "1⁄2" becomes "/". En and em dashes
# stay: between numbers they mark a range.
_MINUS = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2044": "/"})
_NON_ASCII_DIGIT_RE = re.compile(r"(?![0-9])\d")
# A sign given in words, right before a number ("minus 5", "negative $5$", "positive 3"), is a sign;
# before anything else ("is negative", "plus or minus") the word stays.
_SIGN_WORD_RE = re.compile(r"\b(?:(minus|negative)|plus|positive)\s+(?=(?:\}\s*)?\$?\s*\.?\d)", re.IGNORECASE)


def normalize_text(text: str) -> str:
    """Unicode → plain text that the rules can read: superscripts and subscripts become `^{..}` and
    `_{..}` (NFKC alone would turn "2³" into "23"), vulgar fractions a spaced "1/2" (so "3½" is the
    mixed number 3 1/2), then NFKC (full-width forms, thin and no-break spaces) and every Unicode
    decimal digit (Arabic-Indic, Devanagari, ...) → ASCII; a sign in words before a number
    ("minus 5", "negative 5") becomes the sign ("-5")."""
    text = _INVISIBLE_RE.sub("", text)
    text = _SUPERSCRIPT_RE.sub(lambda m: "^{" + "".join(_SUPERSCRIPTS[c] for c in m.group()) + "}", text)
    text = _SUBSCRIPT_RE.sub(lambda m: "_{" + "".join(_SUBSCRIPTS[c] for c in m.group()) + "}", text)
    text = _VULGAR_FRACTION_RE.sub(lambda m: " " + unicodedata.normalize("NFKC", m.group()), text)
    text = unicodedata.normalize("NFKC", text).translate(_MINUS)
    text = _NON_ASCII_DIGIT_RE.sub(lambda m: str(unicodedata.decimal(m.group())), text)
    return _SIGN_WORD_RE.sub(lambda m: "-" if m.group(1) else "+", text)


# ---------------------------------------------------------------------------------------------
# Numbers

_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
# "1 234 567": only inside a claim, where a run of 3-digit groups cannot be a list of numbers.
_SPACED = r"\d{1,3}(?: \d{3})+(?![\d/])"
_EXPONENT = r"\s*(?:[eE]|(?:×|x|\*|\\times|\\cdot|·)\s*10\s*\^)\s*\{?\s*(?P<exp>[-+]?\s*\d+)\s*\}?"
_NUMBER_VALUE_RE = re.compile(
    r"(?P<sign>[-+])?\s*(?:"
    r"(?P<whole>\d+)\s+(?P<num>\d+)\s*/\s*(?P<den>\d+)"
    r"|(?P<lwhole>\d+)\s*\\[dt]?frac\{(?P<lnum>\d+)\}\{(?P<lden>\d+)\}"
    rf"|\\[dt]?frac\{{\s*(?P<fsign>[-+])?\s*(?P<fnum>{_DECIMAL})\s*\}}\{{\s*(?P<fden>{_DECIMAL})\s*\}}"
    rf"|(?P<a>{_DECIMAL})\s*/\s*(?P<b>{_DECIMAL})"
    rf"|(?P<mantissa>{_SPACED}|{_DECIMAL})(?:{_EXPONENT})?"
    r")"
)
# A number token in free text (the fallback), longest forms first.
_NUMBER_TOKEN_RE = re.compile(
    r"(?<![\w.])(?:\d+\s+\d+\s*/\s*\d+(?![\d.])"
    rf"|(?:{_DECIMAL})(?:\s*/\s*(?:{_DECIMAL}))?(?:[eE][-+]?\d+)?)"
)


def _parse_number(text: str) -> Fraction | None:
    """The exact value of one number written in any supported form, or None. Raises _TooComplex for a
    number too large to compare."""
    m = _NUMBER_VALUE_RE.fullmatch(text.strip())
    if m is None:
        return None
    if len(re.sub(r"\D", "", m.group())) > MAX_POWER_DIGITS:
        raise _TooComplex
    g = m.groupdict()
    try:
        if g["whole"] is not None or g["lwhole"] is not None:
            whole, num, den = (
                (g["whole"], g["num"], g["den"]) if g["whole"] else (g["lwhole"], g["lnum"], g["lden"])
            )
            fraction = Fraction(int(num), int(den))
            if fraction >= 1:  # "3 4/2" is not a mixed number
                return None
            value = int(whole) + fraction
        elif g["fnum"] is not None:
            value = Fraction(g["fnum"].replace(",", "")) / Fraction(g["fden"].replace(",", ""))
            value = -value if g["fsign"] == "-" else value
        elif g["a"] is not None:
            value = Fraction(g["a"].replace(",", "")) / Fraction(g["b"].replace(",", ""))
        else:
            value = Fraction(g["mantissa"].replace(",", "").replace(" ", ""))
            if g["exp"] is not None:
                exponent = int(g["exp"].replace(" ", ""))
                if abs(exponent) > MAX_POWER_DIGITS:
                    raise _TooComplex
                value *= Fraction(10) ** exponent
    except ZeroDivisionError:
        return None
    return -value if g["sign"] == "-" else value


def as_fraction(value: str) -> Fraction | None:
    """An exact number from "12", "-3.5", "1,000", "3/4", "3 1/2", "1.5e3" or "\\frac{3}{4}"; None for
    anything else (including numbers too large to compare)."""
    try:
        return _parse_number(_clean(normalize_text(value)))
    except _TooComplex:
        return None


# ---------------------------------------------------------------------------------------------
# Cleaning a value

_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"
)
# LaTeX spacing (also "~" after a word, a non-breaking space) becomes a space; "1{,}000" a comma, and
# the negative thin space `\!` nothing ("\$32,\!348" is 32,348).
_SPACING_RE = re.compile(
    r"\\!|\\[,;: ]|\\(?:left|right|displaystyle|quad|qquad)\b|\{,\}|(?<=[\w}])~"
    r"|\\(?:hspace|vspace|phantom|hphantom|vphantom)\s*\{[^{}]*\}"
)
_SPACES = {"{,}": ",", "\\!": ""}
_EMPHASIS_RE = re.compile(
    r"(?<![^\s(\[])(?:\*{1,2}|_{1,2})(?=[^\s*_])|(?<=[^\s*_])(?:\*{1,2}|_{1,2})(?![^\s.,;:!?)\]])"
)
_MATH_DELIMITER_RE = re.compile(r"\\[()\[\]]")
_DEGREES_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")


def _unwrap(text: str) -> str:
    """`\\text{or}` → " or ": text commands are read as the words they hold ("~" in them is a space)."""
    return _TEXT_CMD_RE.sub(lambda m: f" {m.group(1).replace('~', ' ')} ", text)


def _clean(text: str) -> str:
    """A value without LaTeX spacing, `$`, `%`, degree signs, outer braces and a trailing period."""
    s = _SPACING_RE.sub(lambda m: _SPACES.get(m.group(), " "), _unwrap(text))
    s = _EMPHASIS_RE.sub("", s)  # markdown "**42**" (but "2**10" and "2 * 3" are math)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").replace("**", "^")
    s = _MATH_DELIMITER_RE.sub(" ", s)
    s = _DEGREES_RE.sub("", s).strip().rstrip(".").strip()
    while len(s) >= 2 and s[0] == "{" and s[-1] == "}" and _balanced(s[1:-1]):
        s = s[1:-1].strip()
    return s


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def _canon(text: str) -> str:
    """Whitespace-, `$`- and text-command-insensitive form, for exact comparisons. A space between
    two word characters stays: "4 2" is not "42"."""
    return re.sub(r"\s*([^\w\s])\s*", r"\1", re.sub(r"\s+", " ", _clean(text)))


# A run of math: numbers, operators, brackets, LaTeX commands, single-letter variables and function
# names. A word of two or more letters ends it ("42 apples" → "42").
_FUNCTIONS = "sqrt|sin|cos|tan|cot|sec|csc|log|ln|exp|pi|arcsin|arccos|arctan|sinh|cosh|tanh|mod|gcd|lcm"
_FUNCTION_RE = re.compile(rf"\b(?:{_FUNCTIONS})\b")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MATH_SPAN_RE = re.compile(
    r"(?:\\[A-Za-z]+|[0-9.,+\-*/^=<>()\[\]{}|!_'\s×÷·√π∞∪∩≤≥\\]"
    rf"|(?<![A-Za-z])(?:{_FUNCTIONS}|[A-Za-z])(?![A-Za-z]))+"
)


def _math_value(text: str) -> tuple[str, str]:
    """The answer in a math claim — the leading run of math, its result after the last "=" — and the
    text after that run."""
    text = _BOX_RE.sub("", text)  # an unclosed "\\boxed{x+1" in the fallback
    m = _MATH_SPAN_RE.match(text)
    span = m.group() if m else ""
    core = re.sub(r"[\s,.;:(\[{]+$", "", span)  # "= 64, \\]as before": a trailing comma lists nothing
    value = core if re.search(r",|\\pm|±", core) else core[_last_equals(core) + 1 :]  # not "x=1, y=2"
    return value.strip(), text[len(span) :]


def _last_equals(span: str) -> int:
    """Index of the last top-level "=" (not in braces, not "<=", ">=", "!=", "=="); -1 if none."""
    depth, last = 0, -1
    for i, ch in enumerate(span):
        depth += (ch in "({[") - (ch in ")}]")
        if (
            ch == "="
            and depth == 0
            and span[i - 1 : i] not in ("<", ">", "!", "=")
            and span[i + 1 : i + 2] != "="
        ):
            last = i
    return last


def _number_text(value: str) -> str:
    """A clean number as the extracted answer: separators gone, sign attached ("- 1,234" → "-1234")."""
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", value)
    s = re.sub(r"(?<=\d) (?=\d{3}(?![\d/]))", "", s)
    return re.sub(r"^([-+])\s+", r"\1", s)


# ---------------------------------------------------------------------------------------------
# The reference

ReferenceKind = Literal["number", "math", "composite", "choice", "text"]
# Choice letters stop at H, so the pronoun "I" is never read as a choice.
_CHOICE_RE = re.compile(r"\(([A-H])\)|([A-H])(?![A-Za-z0-9'])")
_WORDS_RE = re.compile(r"[A-Za-z][A-Za-z' -]*")
_RANGE_RE = re.compile(rf"(?:{_DECIMAL})\s*-\s*(?:{_DECIMAL})")
# What else separates values: LaTeX line breaks, arrows, "|" between numbers.
_SEPARATOR_RE = re.compile(
    r"\\\\|[;&]|\d\s*\|\s*\d|\\(?:mid|parallel|to|gets|implies|iff|newline|cr"
    r"|(?:long)?(?:left|right|leftright|Left|Right|Leftright)arrow)\b"
)
_SUBSCRIPTED_NUMBER_RE = re.compile(r"\d\s*_")
_DANGLING_RE = re.compile(r"[-+*/^=]\s*$")
_JUXTAPOSED_RE = re.compile(r"\d\s+[-+]?\s*\d|\d\s*\(\s*[-+]?\s*[\d.]+\s*\)")
_COMPOSITE_RE = re.compile(r",(?!\d{3}(?!\d))|\\pm|\\mp|±|∓|\\cup|∪|\\cap|\bor\b|\band\b")


@dataclass(frozen=True)
class _Reference:
    kind: ReferenceKind
    text: str  # the clean reference: a letter, normalised words, or math
    number: Fraction | None = None


def _words(text: str) -> str:
    """Lower-case words without articles or punctuation: how text answers are compared."""
    words = re.findall(r"[a-z0-9']+", _clean(text).lower())
    return " ".join(w for w in words if w not in ("the", "a", "an"))


def _read_reference(reference: str) -> _Reference:
    s = _clean(normalize_text(reference))
    choice = re.fullmatch(r"\(([A-H])\)(?:\s.*)?|([A-H])", s)
    if choice is not None:
        return _Reference("choice", choice.group(1) or choice.group(2))
    if _WORDS_RE.fullmatch(s) and re.search(r"[A-Za-z]{3,}", s) and not _FUNCTION_RE.search(s):
        return _Reference("text", _words(s))
    value = _math_value(s)[0] or s
    number = _parse_number(value)
    if number is not None:
        return _Reference("number", _number_text(value), number)
    if _COMPOSITE_RE.search(s):
        return _Reference("composite", s)
    return _Reference("math", value)


# ---------------------------------------------------------------------------------------------
# Comparison

# Math that sympy would take unbounded time to compare.
_UNBOUNDED_RE = re.compile(r"\\(?:sum|prod|int|iint|iiint|oint|lim|limsup|liminf)\b|!!|[)}\]]\s*!")
# Nesting that math-verify's parser takes seconds on: ((((((x)))))) — 20 levels take 2 s.
MAX_PAREN_DEPTH = 6
MAX_BRACE_DEPTH = 10
_LONG_LITERAL_RE = re.compile(rf"\d{{{MAX_POWER_DIGITS + 1},}}")
_FREE_VARIABLE_RE = re.compile(r"(?<![A-Za-z\\])(?!e(?![A-Za-z])|i(?![A-Za-z]))[A-Za-z]")


def _group(text: str, i: int) -> tuple[str, int]:
    """The operand starting at text[i]: a balanced `{...}` / `(...)` group, a number, or one symbol."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return "", i
    if text[i] in "{(":
        close = "}" if text[i] == "{" else ")"
        depth = 0
        for j in range(i, min(len(text), i + MAX_SYMBOLIC_CHARS)):
            depth += (text[j] == text[i]) - (text[j] == close)
            if depth == 0:
                return text[i + 1 : j], j + 1
        return text[i + 1 :], len(text)
    m = re.match(r"[-+]?\d+(?:\.\d+)?|\\[A-Za-z]+|.", text[i:])
    assert m is not None  # "." matches any character
    return m.group(), i + m.end()


def _depth(text: str, opening: str, closing: str) -> int:
    depth = deepest = 0
    for ch in text:
        depth += (ch in opening) - (ch in closing)
        deepest = max(deepest, depth)
    return deepest


def _operand_before(text: str, end: int) -> str:
    """The operand that ends just before `end`: a balanced (...) / {...} / [...] group (brackets
    included), a number, a command or one symbol."""
    j = len(text[:end].rstrip())
    if j == 0:
        return ""
    if text[j - 1] in ")}]":
        depth = 0
        for i in range(j - 1, max(-1, j - 1 - MAX_SYMBOLIC_CHARS), -1):
            depth += (text[i] in ")}]") - (text[i] in "({[")
            if depth == 0:
                return text[i:j]
        return text[:j]
    m = re.search(r"(?:\d+(?:\.\d+)?|\\[A-Za-z]+|[A-Za-z])$", text[max(0, j - 50) : j])
    return m.group() if m else text[j - 1]


def _has_variable(expr: str) -> bool:
    return re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", expr)) is not None


def _log10_bound(text: str) -> float:
    """An upper bound on log10 |value| of a numeric expression: exact for a literal, recursive for a
    power of literals, the count of digits for an expression without powers (it bounds any sum,
    product or quotient of its literals), and inf for anything else."""
    s = text.strip()
    if re.fullmatch(r"[-+]?\d+(?:\.\d+)?", s):
        return math.log10(max(abs(float(s)), 1.0))
    if "^" not in s:
        return float(sum(len(d) for d in re.findall(r"\d+", s)))
    m = re.match(r"(\d+(?:\.\d+)?)\s*\^", s)
    if m is None:
        return math.inf
    exponent, end = _group(s, m.end())
    if s[end:].strip():
        return math.inf
    log_exponent = _log10_bound(exponent)
    if log_exponent > 9:
        return math.inf
    return 10**log_exponent * math.log10(max(float(m.group(1)), 1.0))


def _too_complex(expr: str) -> bool:
    """Cheap checks that keep sympy away from answers it could spend unbounded time on."""
    if _UNBOUNDED_RE.search(expr) or _LONG_LITERAL_RE.search(expr):
        return True
    if _depth(expr, "([", ")]") > MAX_PAREN_DEPTH or _depth(expr, "{", "}") > MAX_BRACE_DEPTH:
        return True
    for m in re.finditer(r"(\d+)\s*!", expr):  # 1000000! has 5.5 million digits
        if int(m.group(1)) > 1000:
            return True
    for m in re.finditer(r"\\(?:binom|dbinom|tbinom)\s*\{([^{}]*)\}", expr):
        if _log10_bound(m.group(1)) > 4:
            return True
    for m in re.finditer(r"\^", expr):
        exponent, _ = _group(expr, m.end())
        if _has_variable(exponent):
            continue  # a symbolic exponent (x^{x^{x}}, e^{-x^{2}}) stays unevaluated
        log_exponent = _log10_bound(exponent)
        base = _operand_before(expr, m.start())
        if base[:1] in ("(", "{", "[") and _has_variable(base):
            if log_exponent > math.log10(12):
                return True  # (x+1)^{200}, \sin(x)^{100}: sympy expands them for seconds
        elif base[:1] in ("(", "{", "[") or base[:1].isdigit():  # a number: (1/2)^{20}, 9^{9^{9}}
            digits = 10 ** min(log_exponent, 12) * _log10_bound(base.strip("(){}[]"))
            if digits > MAX_POWER_DIGITS:
                return True
        elif log_exponent > math.log10(MAX_POWER_DIGITS):
            return True  # x^{10^{9}}, e^{1000000}
    return False


def _symbolic_equal(candidate: str, reference: str) -> bool:
    from math_verify import parse
    from math_verify import verify as mv_verify

    # Its signal-based timeouts are off on purpose (they fail outside the main thread; inputs are
    # bounded by _too_complex); silence the warning it logs about that on every call.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        gold = parse(f"${reference}$", parsing_timeout=None)
        target = parse(f"${candidate}$", parsing_timeout=None)
        if not gold or not target:
            return False
        return bool(mv_verify(gold, target, timeout_seconds=None))
    except Exception:  # sympy raises many types on odd input; an unparseable answer is wrong
        return False


def _choice_letters(text: str) -> set[str]:
    return {a or b for a, b in _CHOICE_RE.findall(_clean(text))}


def _compare(value: str, ref: _Reference) -> str | None:
    """None when the value equals the reference, else the failure kind."""
    if ref.kind == "choice":
        letters = _choice_letters(value)
        if len(letters) > 1:
            return "multiple answers"
        return None if letters == {ref.text} else "wrong answer"
    if ref.kind == "text":
        return None if _words(value) == ref.text else "wrong answer"
    value = _clean(value)
    if _canon(value) == _canon(ref.text):
        return None
    number = _parse_number(value)
    if number is not None and ref.number is not None:
        return None if number == ref.number else "wrong answer"
    several = (
        _COMPOSITE_RE.search(value)
        or _RANGE_RE.fullmatch(value)
        or _JUXTAPOSED_RE.search(value)
        or _SEPARATOR_RE.search(value)
        or value.count("|") % 2
    )
    if ref.kind != "composite" and number is None and several:
        return "multiple answers"  # "5, 6", "5 or 6", "5 \\pm 1", "5-6", "5 6", "5 \\\\ 6", "5|6"
    if _SUBSCRIPTED_NUMBER_RE.search(value) or _DANGLING_RE.search(value):
        return "wrong answer"  # "5_{6}" (a numeral in another base) and "42-" are read as 5 and 42 by sympy
    if ref.number is not None and _FREE_VARIABLE_RE.search(re.sub(r"\\[A-Za-z]+", "", value)):
        return "wrong answer"  # "x + 1" is never the number 3
    candidate = value
    if ref.kind == "composite":  # "x = 2 or x = 3" lists the same set as "2, 3"
        candidate = re.sub(r"\s+(?:or|and)\s+", ", ", value)
    if max(len(candidate), len(ref.text)) > MAX_SYMBOLIC_CHARS:
        return "wrong answer"  # not equal as text (above), and too long for sympy
    if _too_complex(candidate):
        raise _TooComplex
    if _too_complex(ref.text):
        return "wrong answer"
    return None if _symbolic_equal(candidate, ref.text) else "wrong answer"


# ---------------------------------------------------------------------------------------------
# Reading the final claim

Mode = Literal["math", "choice", "text"]

# Sentences addressed to whoever grades the output.
_INJECTION_RE = re.compile(
    r"\b(?:grader|graders|grading|evaluator|verifier|instructions?|answer\s+key|ground[\s-]+truth"
    r"|gold(?:en)?\s+(?:answer|label)|expected\s+(?:answer|output|result)|official\s+(?:answer|solution)"
    r"|the\s+reference|reference\s+(?:answer|solution|says|states|value|result|output)"
    r"|system\s+(?:prompt|message|note)|ignore\s+(?:all\s+|any\s+)?(?:previous|prior|above)"
    r"|mark\s+(?:this|it|me|as|the\s+answer|my\s+answer|the\s+response)\b[^.\n]{0,40}?\bcorrect)\b"
    r"|\breference\s*:",
    re.IGNORECASE,
)
# "8th graders", "$7^{\\mathrm{th}}$-graders": school years, not graders.
_GRADE_LEVEL_RE = re.compile(
    r"(?:\d(?:st|nd|rd|th)|th\}\}?\$?|\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth"
    r"|eleventh|twelfth))[\s$-]*$",
    re.IGNORECASE,
)
# Not "\\!" (LaTeX spacing) nor "5!}" (a factorial); a period before a closing math delimiter ends a
# sentence too ("= \\boxed{81}.\\] (Note that ...)").
_SENTENCE_END_RE = re.compile(r"\n|(?<!\\)[!?]+(?=\s|$)|\.(?=\s|$|\$|\\[\])])")
# A blanked sentence runs on over a line break that follows a colon ("Grader note:\n42").
_MASK_END_RE = re.compile(r"(?<![:\s])\s*\n|[!?;]|\.(?=\s|$)|\s(?:but|however)\b", re.IGNORECASE)
_CLOSE_BRACKET_RE = re.compile(r"[)\]]")
_MARKER_RE = re.compile(
    r"####"
    r"|\b(?:final\s+|correct\s+|right\s+)?answers?\b[\s*_]*(?:to\s+[^.\n]{1,40}?\s+)?"
    r"(?:is|are|was|were|would\s+be|will\s+be|should\s+be|must\s+be|might\s+be|could\s+be|may\s+be"
    r"|=|:=|:|->|→)"
    r"|\b(?:actually|wait|oops|correction|sorry)\b[\s,:!.-]*"
    r"(?:it(?:'s|\s+is|\s+should\s+be|\s+must\s+be)|that\s+should\s+be|make\s+(?:that|it))",
    re.IGNORECASE,
)
_BRACE_RE = re.compile(r"[{}]")
# Words between a marker and its value that neither state nor change it ("the answer is therefore
# 5"), and hedges or negations that do change it (flagged from the whole region, then skipped).
_LEAD_RE = re.compile(
    r"(?:[\s*:=`~≈]|\\\(|\\\[|n't\b"
    r"|(?:therefore|thus|hence|so|then|clearly|simply|just|exactly|indeed|actually|finally|definitely"
    r"|obviously|basically|now|equal\s+to|equals|given\s+by|that|maybe|perhaps|possibly|probably|likely"
    r"|approximately|approx|roughly|around|about|nearly|almost|at\s+least|at\s+most|not|never|between"
    r"|either|from|option|choice|letter)\b)*",
    re.IGNORECASE,
)
# A subordinate clause explains the answer rather than stating it: it is not read for flags.
_CUT_RE = re.compile(
    r",?\s+(?:because|since|as|which|who|whose|where|given|using|so|hence|thus|therefore|when|while)\b"
    r"|\s+\((?:since|because|as|by|using)\b",
    re.IGNORECASE,
)


def _word_set(words: str) -> frozenset[str]:
    """A set of words, written as one string."""
    return frozenset(words.split())


# Approximations hedge a claim, because the comparison is exact ("≈ 3.14" commits to no value) -
# unless the question asks for a rounded or estimated value ("to the nearest tenth", "estimate"),
# where "≈ 0.43" is the answer asked for. "~" after a space and before a number is "about";
# elsewhere ("=&~ 1", "\\boxed{108}~\\text{in}^2") it is LaTeX's non-breaking space.
_APPROXIMATION = (
    r"\b(?:approx(?:imately)?|roughly|around|about|nearly|almost|circa|estimated?|or\s+so|more\s+or\s+less"
    r"|give\s+or\s+take)\b|-ish\b|[≈≃]|(?<![^\s(\[])~(?=\s*[-+]?\.?\d)|\\(?:approx|sim|simeq)\b"
)
_APPROXIMATION_RE = re.compile(_APPROXIMATION, re.IGNORECASE)
_ROUNDING_RE = re.compile(
    r"\b(?:nearest|closest|round(?:ed|ing)?|decimals?|estimated?|approximat\w*|significant\s+(?:figures|digits)"
    r"|about\s+how)\b",
    re.IGNORECASE,
)
_HEDGE_RE = re.compile(
    r"\b(?:maybe|perhaps|possibly|probably|presumably|likely|unlikely|might|may|could|guess(?:ing)?"
    r"|unsure|uncertain|not\s+(?:sure|certain)|at\s+(?:least|most))\b|\?|" + _APPROXIMATION,
    re.IGNORECASE,
)
_NEGATION_RE = re.compile(r"\b(?:not|never|cannot|neither|nor|no\s+longer)\b|n't\b|≠|\\(?:neq?|not)\b", re.I)
_MULTIPLE_RE = re.compile(
    r"\b(?:or(?!\s+(?:else|otherwise)\b)|either|between)\b|\band\s*[-+(]?\s*\\?\d|,(?!\d{3}(?!\d))\s*[-+]?\s*\d|±|∓"
    r"|\\(?:pm|mp|lor|vee)\b|\d\s*(?:to|through|thru|[–—]|\.\.\.?|…)\s*[-+]?\s*\d",
    re.IGNORECASE,
)
# A hedge, negation or alternative right before a claim, governing it: "maybe \boxed{5}", "not 42",
# "it could be 5", "I don't think the answer is", "5 or 6", "5 and 6", "either 5", "between 5". Each
# is checked further (_governing_flag): a modal hedges only through "be" ("Kim could buy \boxed{30}"
# states what she can buy), a negation only when no preposition follows it ("did not work for
# \boxed{6} days" counts days), "either" and "between" only right before the value ("the angle
# between the lines is \boxed{90}"), and "or" / "and" only after another value (_alternative_before).
_GOVERNING_RE = re.compile(
    r"(?:(?P<modal>\b(?:could|might|may)\s+(?:well\s+|also\s+|just\s+)?be)"
    r"|(?P<negation>\b(?:not|never)\b|n't)"
    r"|(?P<join>\bor\b)"
    r"|(?P<adjacent>\b(?:either|between)\b)"
    r"|(?P<hedge>\b(?:maybe|perhaps|possibly|probably|likely|guess|approximately|approx|roughly|about"
    r"|around|nearly|almost)\b|≈|(?<![^\s(\[])~|\\approx|\\sim))"
    r"(?P<words>(?:\s+[A-Za-z']+){0,3})[\s$*(\[]*$"
    r"|(?P<and>\band)\s*[$(\[]*$",
    re.IGNORECASE,
)
# Words that may follow a modal's "be" before the value ("could be equal to 5").
_FILLER_WORDS = _word_set("equal to equals exactly just simply precisely the answer")
_PREPOSITIONS = _word_set(
    "of by from than to in on at for with into per over under times as among after before within without mod"
)
# After a box, the words of its sentence describe what it counts ("\boxed{3} students taking neither",
# "\boxed{4} integers between 5 and 10", "\boxed{6} values of m: 1, 2, 3, 4, 5, 6"), unless they attach
# to the value itself: a separator or another value, a hedge, a negation, or a predicate on it
# ("\boxed{5}, probably", "\boxed{5} or 6", "\boxed{42} is not right"). The attached part runs up to
# the first word that is none of these; only it is read for flags.
_ATTACHING_WORDS = _word_set(
    "or and either nor to through thru not never isn't wasn't is was are were be been would could might"
    " may must should will seems maybe perhaps possibly probably presumably likely unlikely approximately"
    " approx roughly nearly almost circa estimated ish so more less give take at least most plus minus"
    " but i i'm it it's this the my answer final right correct wrong incorrect false true sure certain"
    " guess also else instead otherwise wait hmm actually oops sorry no"
)
_WORD_RE = re.compile(r"\\[A-Za-z]+|(?<![A-Za-z0-9'])[A-Za-z0-9']*[A-Za-z][A-Za-z0-9']*")  # "1st" is a word
# A negation of the value itself, or of its being the answer: "not 41", "is not right", "is wrong".
_VALUE_NEGATION_RE = re.compile(
    r"(?:\b(?:not|never)\b|n't\b)\s*(?:the\s+|my\s+)?(?:final\s+|correct\s+|right\s+)?"
    r"(?:answer|right|correct|true|it\b|[-+$(\\]*\.?\d)|≠|\\neq?\b|\b(?:wrong|incorrect|false)\b",
    re.IGNORECASE,
)
# The speaker's doubt anywhere after a box in its sentence: "\\boxed{5} apples, probably".
_DOUBT_WORDS_RE = re.compile(
    r"\b(?:maybe|perhaps|probably|possibly|presumably|I\s+(?:think|guess|believe)|not\s+(?:sure|certain)|unsure)\b",
    re.IGNORECASE,
)
# A correction cue attached to a box, before another number: "\boxed{41} hmm, 42".
_CORRECTED_RE = re.compile(r"\b(?:wait|actually|oops|sorry|hmm|no)\b\D*\d", re.IGNORECASE)
# "\boxed{12 - 6\sqrt{3}} \approx 1.61": a decimal approximation after an exact answer.
_APPROXIMATED_RE = re.compile(r"^[\s$]*(?:≈|\\approx\b|approximately\b)[\s$]*[-+]?\s*\d[\d.,]*[\s$]*", re.I)
# After the final claim: it is taken back, or another candidate is floated.
_RETRACTION_RE = re.compile(
    r"\b(?:just\s+kidding|scratch\s+that|never\s*mind|disregard\s+(?:that|this|the\s+above|my\s+answer)"
    r"|(?:that|this|it|answer|which)(?:'s|\s+is|\s+was)\s+(?:wrong|incorrect|not\s+(?:right|correct|it))"
    r"|I\s+was\s+wrong|(?:is|was)\s+not\s+(?:the|my)\s+(?:final\s+|correct\s+|right\s+)?answer)\b",
    re.IGNORECASE,
)
_DOUBT_RE = re.compile(
    r"\b(?:I(?:'m|\s+am)\s+not\s+(?:sure|certain|confident)|(?:might|could|may)\s+be\s+wrong)\b",
    re.IGNORECASE,
)
# A sentence that floats an alternative ("Or maybe 6."), or a sentence or clause that corrects
# ("Wait, 6.", "..., hmm, it's 6"): it hedges the claim when the value it floats, after at most a few of
# _FLOATING_WORDS, differs from the claimed value. "Alternatively, since 405 is odd, ..." starts another
# derivation, and "we didn't actually need the value 4" corrects nothing: neither floats a value.
_ALTERNATIVE_RE = re.compile(
    r"(?<![^.!?\n])[\s(\[*_\"']*(?:or|alternatively|maybe|perhaps|possibly|probably|unless)\b"
    r"|(?<![^.!?\n,;:])[\s(\[*_\"']*(?:wait|actually|oops|correction|sorry|mistake|hmm|no)\b",
    re.IGNORECASE,
)
_FLOATED_RE = re.compile(
    r"[\s,:;!.\-]*(?P<words>(?:[A-Za-z']+[\s,:;]+){0,4}?)(?:=\s*)?[\s$(*\[]*(?=[-+]?\.?\d)"
)
_FLOATING_WORDS = _word_set(
    "maybe perhaps possibly probably it it's is was be could might may would should must i i'm think"
    " guess the answer result value rather instead actually wait hmm no or even just that's that make"
    " get got i'd say"
)
# The last sentence of a response that states a number as its result: the number alone ("13", "**13**"),
# or after "=" or ":" ("5 + 8 = 13", "Final: 13"), or after a result word ("I get 13", "So 13", "it's
# 13"), with at most a unit word after it. When that number differs from the claim, the response ends
# on another answer ("The answer is 18, as the problem says. But I compute 20.").
_STATED_RE = re.compile(
    rf"(?<![\w.^_/{{}}])(?P<number>[-+]?\s*(?:{_DECIMAL})(?:\s*/\s*(?:{_DECIMAL}))?)"
    r"[\s$*_)\]]*(?:[A-Za-z]+[\s$*_)\]]*)?$"
)
MAX_STATED_CHARS = 80
_RESULT_WORDS = _word_set(
    "get got gets obtain obtained compute computed calculate calculated find found so thus hence"
    " therefore it's that's result answer final total actually instead rather"
)
# "is" states a result after these only ("it is 13"; not "x is 5", "the sum is 15", another quantity).
_RESULT_SUBJECTS = _word_set("it that this which answer result")
# A sentence that checks the answer ("To check, 3a + 2b = 44, which holds since 30 + 14 = 44").
_CHECK_RE = re.compile(r"\b(?:check|verif|holds?\b|satisf|confirm|as\s+expected|sanity)", re.IGNORECASE)
# Someone else's claim, restated: "Tom says the answer is 12", "according to the book, the answer is
# 18", "the problem states 18", "you said 18", "the given answer is 18", "the answer is 18, as the
# problem says"; and an answer being checked ("We may check our answer: 17 * 44 = 748"). Not the
# responder's claim.
_ATTRIBUTION_RE = re.compile(
    r"(?:\b(?:says|said|states|stated|claims|claimed|asserts|asserted|wrote|writes|thinks|thought"
    r"|believes|believed|supposedly|allegedly)(?:\s+[A-Za-z'*-]+){0,3}?"
    r"|\baccording\s+to(?:[\s,]+[A-Za-z'*-]+){1,4}?|\bgiven\s+(?:answer|value|result)"
    r"|\b(?:check|checking|verify|verifying|confirm|confirming)\s+(?:our|my|the|this)\s+)[\s:\"'$*(]*$",
    re.IGNORECASE,
)
_ATTRIBUTED_AFTER_RE = re.compile(
    r"[\s,;(]*(?:(?:as|like)(?:\s+[A-Za-z'*-]+){1,3}?\s+(?:says|said|states|stated|claims|claimed|suggests"
    r"|suggested|wrote|writes|thinks|thought|believes|believed)|according\s+to)\b",
    re.IGNORECASE,
)
# A question ("Is it a coincidence that the answer is 24?") asks; it does not claim.
_QUESTION_RE = re.compile(
    r"^\W*(?:[A-Za-z]+\s*:\s*)?(?:is|are|was|were|do|does|did|can|could|would|should|will|why|how|what"
    r"|which|who)\b",
    re.IGNORECASE,
)
# A clause ends at a sentence end, a colon, or a comma before a space ("1,234" and "1,2,3" go on).
_CLAUSE_END_RE = re.compile(r"\n|(?<!\\)[!?;:]|[.,](?=\s)")
# A number right before the answer, with only a space or a comma between: a bare list ("1 2 3", "1, 2").
_UNIT_POWER_RE = re.compile(r"\^\s*\{?\s*[-+]?\d+\s*\}?")
_LISTED_RE = re.compile(r"\d[ \t]*[,;]?[ \t]*$")
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)*|[A-Za-z]+|[^\s\w]")


@dataclass(frozen=True)
class _Answer:
    value: str | None
    # The text the value was read from (a box's content, or the rest of an answer sentence): what
    # it says about the claim (hedged, negated, ...) is `inner`; what the text around it says, `outer`.
    region: str = ""
    inner: str | None = None
    outer: str | None = None


def _mask_injections(text: str) -> str:
    """Blank (with spaces, keeping offsets) every sentence, or bracket, addressed to a grader."""
    spans: list[tuple[int, int]] = []
    for m in _INJECTION_RE.finditer(text):
        if (spans and m.start() < spans[-1][1]) or _GRADE_LEVEL_RE.search(
            text, max(0, m.start() - 30), m.start()
        ):
            continue
        window = max(0, m.start() - LOOKBACK)
        before = text[window : m.start()]
        ends = [e.end() for e in _SENTENCE_END_RE.finditer(before)]
        start = window + (ends[-1] if ends else 0)
        opened = max(before.rfind("("), before.rfind("["))
        bracketed = window + opened >= start and not _CLOSE_BRACKET_RE.search(before, opened)
        stop = _MASK_END_RE.search(text, m.end(), m.end() + MAX_BOX_CHARS)
        end = min(len(text), m.end() + MAX_BOX_CHARS) if stop is None else stop.end()
        if stop is not None and stop.group().strip().lower() in ("but", "however"):
            end = stop.start()
        if opened >= 0 and bracketed:  # "(reference: 42)" blanks the bracket, not the sentence
            start = window + opened
            close = _CLOSE_BRACKET_RE.search(text, m.end(), end)
            end = end if close is None else close.end()
        spans.append((start, end))
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], " " * (end - start)]
        last = end
    return "".join([*parts, text[last:]])


def _box_end(text: str, open_end: int) -> int | None:
    """Index of the `}` closing a box whose `{` ends at open_end; None if unbalanced within bounds."""
    depth = 1
    for m in _BRACE_RE.finditer(text, open_end, min(len(text), open_end + MAX_BOX_CHARS)):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return m.start()
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}`, honouring nested braces; None when there is
    none or it is cut off (e.g. by max_tokens)."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    m = _BOX_RE.match(text, start) if start >= 0 else None
    if m is None:
        return None
    end = _box_end(text, m.end())
    return None if end is None else text[m.end() : end]


def _clause_start(text: str, start: int, floor: int = 0, ends_re: re.Pattern[str] = _CLAUSE_END_RE) -> int:
    """Where the clause (or, with `ends_re`, the sentence) that leads up to `start` begins (at most
    LOOKBACK characters back)."""
    window = max(floor, start - LOOKBACK)
    ends = [m.end() for m in ends_re.finditer(text, window, start)]
    return ends[-1] if ends else window


def _clause_after(text: str, start: int) -> str:
    """From `start` to the end of its sentence (with a final "?", so that the hedge is seen; without
    "." or "!", which would read as a decimal point or a factorial) or to a subordinate clause
    ("because ..."), at most CLAIM_WINDOW characters."""
    window = text[start : start + CLAIM_WINDOW]
    stop = _SENTENCE_END_RE.search(window)
    clause = window if stop is None else window[: stop.end() if "?" in stop.group() else stop.start()]
    cut = _CUT_RE.search(clause)
    return clause if cut is None else clause[: cut.start()]


def _flag(text: str, rounded: bool = False) -> str | None:
    """The failure kind that words of a claim earn it, if any (approximations are none when the
    question asks for a rounded value: `rounded`)."""
    text = _unwrap(text)
    if rounded:
        text = _APPROXIMATION_RE.sub(" ", text)
    if _HEDGE_RE.search(text):
        return "hedged"
    if _NEGATION_RE.search(text):
        return "negated"
    if _MULTIPLE_RE.search(text):
        return "multiple answers"
    return None


def _governing_flag(
    text: str,
    start: int,
    value: str,
    ctx: _Context,
    floor: int = 0,
    scaled: bool = False,
    several: bool = False,
) -> str | None:
    """A hedge, negation or alternative right before the claim at `start` ("maybe \\boxed{5}", "not
    42", "5 or \\boxed{6}"), as _GOVERNING_RE and its checks read them; `scaled`: a unit or "%"
    follows the claim (see _same_value); `several`: the claim holds several values itself, which a
    "between" before it introduces ("between \\boxed{12 \\text{ and } 13}")."""
    clause_start = _clause_start(text, start, floor)
    before = _unwrap(text[max(floor, clause_start - LOOKBACK) : clause_start])
    clause = _unwrap(text[clause_start:start])
    pos = 0
    while (m := _GOVERNING_RE.search(clause, pos)) is not None:
        pos = m.start() + 1
        words = (m.group("words") or "").lower().split()
        if m.group("modal"):
            if _FILLER_WORDS.issuperset(words):
                return "hedged"
        elif m.group("negation"):
            if "equal" in words or not _PREPOSITIONS.intersection(words):
                return "negated"
        elif m.group("adjacent"):
            if not words and not several:
                return "multiple answers"
        elif m.group("hedge"):
            if not (ctx.rounded and _APPROXIMATION_RE.fullmatch(m.group("hedge"))):
                return "hedged"
        elif _alternative_before(before + clause[: m.start()], value, ctx, bool(m.group("and")), scaled):
            return "multiple answers"
    return None


def _box_before(text: str) -> str | None:
    """The content of the box that ends `text`, if one does."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    m = _BOX_RE.match(text, start) if start >= 0 and text.endswith("}") else None
    return None if m is None or _box_end(text, m.end()) != len(text) - 1 else text[m.end() : -1]


_RELATION_RE = re.compile(r"[<>≤≥≠]|\\(?:le|ge|leq|geq|lt|gt|neq|ne|in)\b")


def _alternative_before(before: str, value: str, ctx: _Context, conjunction: bool, scaled: bool) -> bool:
    """Whether the "or" (or, with `conjunction`, "and") that ends `before` follows another answer: a
    box, or a value standing on its own that differs from the claimed one ("5 or \\boxed{6}"). A value
    equal to the claim restates it ("\\frac{72}{6} or \\boxed{12}", "0.65, or \\boxed{65\\%}"). Not a
    value: an argument ("the reciprocal of \\frac{5}{4}, or"), a name ("the smaller t, or"), a number
    with a unit ("3/4 minutes or \\boxed{45} seconds"), the end of a remark in brackets ("(which is
    6), or"), a relation ("-2 \\le x \\le 7 and"), or, before "and", an equation ("x/3 = 3 and
    \\boxed{x = 9}"): those belong to a description or a statement, which "or" / "and" goes on from."""
    text = _MATH_DELIMITER_RE.sub("  ", before.replace("$", " ")).rstrip().rstrip(" \t\n,")
    operand = _box_before(text)
    if operand is None:
        spans = list(_MATH_SPAN_RE.finditer(text, max(0, len(text) - LOOKBACK)))
        if not spans or spans[-1].end() != len(text) or not spans[-1].group().strip():
            return False  # a word before "or": a description
        operand = spans[-1].group().strip()
        word = re.search(r"([A-Za-z]+)[^A-Za-z]*$", text[: spans[-1].start()])
        if (
            (word is not None and word.group(1).lower() in _PREPOSITIONS)
            or (not re.search(r"\d", operand) and re.search(r"\d", value))
            or (_has_variable(_math_value(_clean(operand))[0]) and not _has_variable(value))
            or operand.count(")") > operand.count("(")
            or _RELATION_RE.search(operand)
            or (conjunction and "=" in operand)
            or _given(operand, ctx)
        ):
            return False
    if ctx.mode == "choice":
        letters = _choice_letters(operand)
        return bool(letters) and letters != _choice_letters(value)
    if ctx.mode == "text":  # a number is no alternative to a word ("1, 2, 4, 8, or \boxed{four} numbers")
        return re.search(r"[A-Za-z]", operand) is not None and _words(operand) != _words(value)
    if as_fraction(value) is not None and re.match(r"\\?[{(\[]", operand) and "," in operand:
        return False  # a set or a list is no alternative to a number ("\{131, 133, ...\}, and \boxed{131}")
    return not _same_value(_math_value(_clean(operand))[0] or operand, value, scaled, ctx.rounded)


def _given(operand: str, ctx: _Context) -> bool:
    """Whether a value of three characters or more is copied from the question ("the endpoints are
    (4,5) and \\boxed{(-2,-9)}", one endpoint given): data, not another answer."""
    value = _canon(operand)
    if len(value) < 3:
        return False
    # Whole numbers only: "4,5" is not in "14,5"; "(4,5)" is in "is(4,5)".
    start = r"(?<![\w.])" if value[0].isalnum() else ""
    end = r"(?![\w.])" if value[-1].isalnum() else ""
    return re.search(start + re.escape(value) + end, _canon(ctx.quoted)) is not None


def _same_value(a: str, b: str, scaled: bool, rounded: bool) -> bool:
    """Whether value `a` restates the claimed value `b`: equal as the grader compares them; with
    `scaled` (a unit or "%" follows the claim), the same up to a power of ten ("0.65, or
    \\boxed{65\\%}", "0.6, or \\boxed{60} cents"); with `rounded` (the question asks to round), `b`
    is `a` rounded to b's decimals ("16.7, or \\boxed{17\\%} to the nearest whole number")."""
    try:
        if _compare(a, _read_reference(b)) is None:
            return True
    except _TooComplex:
        return False
    x, y = as_fraction(a), as_fraction(b)
    if x is None or y is None or x == 0:
        return False
    if scaled and any(x * 10**k == y or y * 10**k == x for k in (1, 2, 3)):
        return True
    decimals = re.search(r"\.(\d+)", b)
    return rounded and abs(x - y) * 2 * 10 ** len(decimals.group(1) if decimals else "") <= 1


def _attached(tail: str) -> str:
    """The start of the text after a box that attaches to its value (see _ATTACHING_WORDS)."""
    for m in _WORD_RE.finditer(tail):
        if not m.group().startswith("\\") and m.group().lower() not in _ATTACHING_WORDS:
            return tail[: m.start()]
    return tail


def _tail_flag(tail: str, value: str, ctx: _Context) -> str | None:
    """What the rest of a box's sentence does to it: a "?" at its end hedges it; otherwise only the
    part attached to the value counts ("\\boxed{5}, probably", but not "\\boxed{3} with neither")."""
    if tail.rstrip().endswith("?"):
        return "hedged"
    attached = _attached(_unwrap(tail))
    if as_fraction(value) is None:
        attached = _APPROXIMATED_RE.sub(" ", attached)
    if ctx.rounded:
        attached = _APPROXIMATION_RE.sub(" ", attached)
    if _HEDGE_RE.search(attached) or _CORRECTED_RE.search(attached) or _DOUBT_WORDS_RE.search(tail):
        return "hedged"
    if _VALUE_NEGATION_RE.search(attached):
        return "negated"
    restated = re.match(r"[\s$,]*or\b", tail)  # "\boxed{\frac{2401}{100}}, or x = 24.01"
    if restated is not None:
        other = _read_value(_clean(tail[restated.end() :]), "math")[0]
        if other is not None and _same_value(other, value, False, ctx.rounded):
            return None
    if _MULTIPLE_RE.search(attached):
        return "multiple answers"
    return _stated_last(attached, value)  # "\\boxed{12} = 13", "\\boxed{12}, it is 13"


def _trailing_flag(text: str, last: int, value: str) -> str | None:
    """What the text after the final claim's sentence (which holds position `last`) does to it:
    retract it ("That's wrong."), doubt it ("I might be wrong."), float another value ("Or maybe 6.",
    "Wait, 6."), or end on another result ("But I compute 20.")."""
    sentence_end = _SENTENCE_END_RE.search(text, last)
    if sentence_end is None:
        return None
    rest = sentence_end.end()
    if _RETRACTION_RE.search(text, last + 1):  # also ", which is wrong" in the claim's sentence
        return "negated"
    if _DOUBT_RE.search(text, last + 1):
        return "hedged"
    for cue in list(_ALTERNATIVE_RE.finditer(text, rest))[-MAX_CLAIMS:]:  # the last ones, as for claims
        floated = _FLOATED_RE.match(text, cue.end())
        if floated is None or not _FLOATING_WORDS.issuperset(
            re.findall(r"[a-z']+", floated["words"].lower())
        ):
            continue
        number = _read_value(_clause_after(text, floated.end()), "math")[0]
        if (
            number is not None
            and as_fraction(number) is not None
            and as_fraction(number) != as_fraction(value)
        ):
            return "hedged"
    return _stated_last(text[rest:], value)


def _stated_last(text: str, value: str) -> str | None:
    """What the last sentence of `text` (the response after the claim's sentence) does to a numeric
    claim: a different number stated as a result (see _STATED_RE) leaves two answers; the claimed
    value denied ("It's 13, not 12.") is negated. Not a result: a check ("To check, 30 + 14 = 44"),
    an equation computed from the claimed value ("12 + 1 = 13") or naming another quantity ("a =
    147"), a number after "not", a preposition or any other word ("factors of 42", "the sum is 15").
    Asked ("13?"), the other result hedges the claim."""
    claimed = as_fraction(value)
    asked = re.search(r"\?[\s.!?]*$", text) is not None
    body = re.sub(r"[\s.!?]+$", "", text)
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(body)]
    sentence = body[ends[-1] if ends else 0 :]
    stated = _STATED_RE.search(sentence, max(0, len(sentence) - MAX_STATED_CHARS))
    number = None if stated is None else as_fraction(stated.group("number"))
    if claimed is None or stated is None or number is None:
        return None
    before = re.sub(r"[\s$*_(\[]+$", "", sentence[: stated.start()])
    words = re.findall(r"\\?[A-Za-z']+", before[-40:].lower())
    word = words[-1] if words and re.search(r"[A-Za-z']$", before) else ""  # "\\pmod" is no word
    if word in ("not", "never", "isn't"):
        return "negated" if number == claimed else None
    if number == claimed or _CHECK_RE.search(sentence):
        return None
    if before.endswith("="):
        spans = list(_MATH_SPAN_RE.finditer(before, max(0, len(before) - LOOKBACK), len(before) - 1))
        lhs = re.sub(r"\\[A-Za-z]+", "", spans[-1].group()) if spans else ""
        numbers = (Fraction(t.replace(",", "")) for t in re.findall(_DECIMAL, lhs))
        result = not re.search(r"[A-Za-z]", lhs) and claimed not in numbers
    else:
        subject = words[-2] if len(words) > 1 else ""
        result = (
            not before
            or before.endswith(":")
            or word in _RESULT_WORDS
            or (word in ("is", "was") and subject in _RESULT_SUBJECTS)
        )
    if not result:
        return None
    return "hedged" if asked else "multiple answers"


def _normalized(text: str) -> str:
    """Lower case, single spaces, no `$`: for finding text restated from the question."""
    return re.sub(r"\s+", " ", text.replace("$", "")).strip().lower()


def _tokens(text: str) -> list[str]:
    return [t.lower().replace(",", "") for t in _TOKEN_RE.findall(text)]


def _read_value(region: str, mode: Mode) -> tuple[str | None, str | None]:
    """The answer at the start of a claim's region (None when the claim states none: "the answer is
    correct", "the answer is as follows"), and "multiple answers" when another number follows it in
    the clause ("5 & 6", "5; 6"; not a unit's power, "5 m^2")."""
    lead = _LEAD_RE.match(region)
    rest = region[lead.end() :] if lead else region
    if mode == "choice":
        clause = _clean(rest)
        return (clause if _CHOICE_RE.match(clause) else None), None
    if mode == "text":
        return _words(rest) or None, None
    if re.match(rf"a\s+[A-Za-z]{{2}}|(?!(?:{_FUNCTIONS})\b)[A-Za-z]{{2}}", rest):
        return None, None  # a word, not math: no value is claimed
    value, after = _math_value(_clean(rest))
    if not value:
        return None, None
    extra = "multiple answers" if re.search(r"\d", _UNIT_POWER_RE.sub("", after)) else None
    return (_number_text(value) if _NUMBER_VALUE_RE.fullmatch(value) else value), extra


@dataclass(frozen=True)
class _Context:
    """What the question lends to reading a response: its normalised text (claims restated from it
    are skipped) and whether it asks for a rounded value; and the reference's reading mode."""

    quoted: str
    rounded: bool
    mode: Mode


# A unit or "%" after a claim ("\\boxed{60} cents", "\\boxed{20} percent").
_UNIT_AFTER_RE = re.compile(r"[\s$}]*(?:\\?%|\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z]|(?P<word>[A-Za-z]{2,}))")


def _not_claimed(text: str, start: int, after: int, asked: bool, floor: int = 0) -> bool:
    """Whether the claim (or number) at text[start:after] is someone else's ("Tom says the answer is
    12", "the problem states 18", "18, as the problem says"), one being checked ("check our answer:
    ..."), or, in a sentence that asks (`asked`: it ends with "?"), a question ("Is it a coincidence
    that the answer is 24?")."""
    sentence = text[_clause_start(text, start, floor, _SENTENCE_END_RE) : start]
    return (
        _ATTRIBUTION_RE.search(sentence) is not None
        or _ATTRIBUTED_AFTER_RE.match(text, after) is not None
        or (asked and _QUESTION_RE.match(sentence) is not None)
    )


def _final_answer(text: str, question: str | None, mode: Mode) -> _Answer:
    """Find and read the final claim (rules 1-3) in normalised, injection-masked text."""
    asked = normalize_text(question[:MAX_QUESTION_CHARS]) if question else ""
    ctx = _Context(_normalized(asked), _ROUNDING_RE.search(asked) is not None, mode)
    claims = sorted(
        [(m.start(), m.end(), True) for m in _BOX_RE.finditer(text)]
        + [(m.start(), m.end(), False) for m in _MARKER_RE.finditer(text)]
    )
    floor = 0  # the last marker that stated no value ("the answer is correct: 41"): read after it
    skipped: list[tuple[int, int]] = []  # claims restated, attributed or asked: never the answer
    for start, end, boxed in reversed(claims[-MAX_CLAIMS:]):
        if boxed:
            close = _box_end(text, end)
            if close is None or not _clean(text[end:close]):
                continue  # cut off, or an empty template box
            region, after = text[end:close], close + 1
        else:
            region = _clause_after(text, end)
            after = end + len(region)
        value, extra = _read_value(region, mode)
        if value is None and not boxed:
            floor = max(floor, end)
            continue
        # A box always states its content, even when it is not a value ("\boxed{\text{five}}").
        value = value if value is not None else _clean(region)
        claim = text[start:after] if boxed else f"{text[start:end]} {value}"
        tail = _clause_after(text, after) if boxed else ""
        asked_here = (tail if boxed else region).rstrip().endswith("?")
        if (ctx.quoted and _normalized(claim) in ctx.quoted) or _not_claimed(text, start, after, asked_here):
            skipped.append((start, after))
            continue  # quoted from the question, someone else's, being checked, or asked
        unit = _UNIT_AFTER_RE.match(text, after)
        scaled = "%" in region or (unit is not None and (unit["word"] or "").lower() not in _ATTACHING_WORDS)
        outer = (
            (None if boxed else _flag(text[start:end], ctx.rounded))  # "the answer might be"
            or _governing_flag(
                text, start, value, ctx, scaled=scaled, several=_flag(region) == "multiple answers"
            )
            or (_tail_flag(tail, value, ctx) if boxed else None)
            or _trailing_flag(text, after + len(tail) - 1, value)
        )
        return _Answer(value, region, _flag(region, ctx.rounded) or extra, outer)
    if mode == "math":
        return _fallback(text, floor, ctx, skipped)
    # No claim of a letter or a word: a short last line ("(C)", "even") is one, unless quoted.
    line = text[max(floor, len(text) - CLAIM_WINDOW) :].rstrip().rsplit("\n", 1)[-1].strip()
    value = _read_value(line, mode)[0] if len(line) <= MAX_BARE_CHARS else None
    if value is None or (ctx.quoted and _normalized(line) in ctx.quoted):
        return _Answer(None)
    return _Answer(value, line, _flag(line, ctx.rounded))


def _fallback(text: str, floor: int, ctx: _Context, skipped: list[tuple[int, int]]) -> _Answer:
    """No claim: the last number after `floor`, read with the math around it ("7 * 2 = 14" → 14,
    "2^{3}" → 2^{3}), skipping numbers inside text copied from the question, inside `skipped` claims,
    or attributed to someone else ("the problem states 18"); the math read never reaches back into a
    skipped claim ("\\boxed{12} (13)" with "\\boxed{12}" quoted reads 13)."""
    tokens = _tokens(ctx.quoted)
    trigrams = {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}
    end = len(text)
    for _ in range(MAX_FALLBACK_NUMBERS):
        number = _last_number(text, floor, end)
        if number is None:
            return _Answer(None)
        start, stop = number.span()
        around = [
            *_tokens(text[max(floor, start - 40) : start])[-2:],
            *_tokens(number.group()),
            *_tokens(text[stop : stop + 40])[:2],
        ]
        if (
            any(tuple(around[i : i + 3]) in trigrams for i in range(len(around) - 2))
            or any(s <= start < e for s, e in skipped)
            or _not_claimed(text, start, stop, False, floor)
        ):
            end = start
            continue
        clause = _clause_start(text, start, floor)
        sentence = _SENTENCE_END_RE.search(text, stop)
        limit = len(text) if sentence is None else sentence.start()
        spans = (m for m in _MATH_SPAN_RE.finditer(text, clause, limit) if m.end() >= stop)
        span = next(spans, None)
        value_start = span.start() if span is not None and span.start() <= start else start
        value_start = max([value_start, *(e for _, e in skipped if e <= start)])
        # "0 1 2 ... 4999" is a bare list: its last number is read, and the list fails.
        listed = _LISTED_RE.search(text, max(floor, min(value_start, start - 16)), start) is not None
        value_start = start if listed else value_start
        region = _clause_after(text, value_start)
        value, extra = _read_value(region, "math")
        if value is None:
            return _Answer(None)
        outer = (
            ("multiple answers" if listed else None)
            or _governing_flag(text, value_start, value, ctx, floor)
            or _trailing_flag(text, value_start + len(region) - 1, value)
        )
        return _Answer(value, region, _flag(region, ctx.rounded) or extra, outer)
    return _Answer(None)


def _last_number(text: str, floor: int, end: int) -> re.Match[str] | None:
    """The last number token in text[floor:end], searched backwards in windows (linear overall)."""
    size = 4096
    while end > floor:
        start = max(floor, end - size)
        last = None
        for last in _NUMBER_TOKEN_RE.finditer(text, start, end):  # noqa: B007  # keep the last
            pass
        if last is None:
            if start == floor:
                return None
            end = start + 32  # overlap, so a token across the window's edge is seen whole
        elif last.start() > start + 32 or start == floor:
            return last
        else:
            size *= 2  # the token may begin before the window: widen it
    return None


def precheck(response: str | None) -> Grade | None:
    """The grade of a response that needs no reading (empty, or longer than MAX_RESPONSE_CHARS)."""
    if not response or not response.strip():
        return failed("empty")
    if len(response) > MAX_RESPONSE_CHARS:
        return failed("too long")
    return None


def _mode(ref: _Reference) -> Mode:
    return "choice" if ref.kind == "choice" else "text" if ref.kind == "text" else "math"


def extract_answer(text: str | None, question: str | None = None) -> str | None:
    """The model's final answer (a number or an expression) as a clean string, or None when the
    response has none. Hedged, negated or multiple claims are still extracted; `grade` fails them."""
    if text is None or precheck(text) is not None:
        return None
    return _final_answer(_mask_injections(normalize_text(text)), question, "math").value


def verify(extracted: str | None, reference: str) -> bool:
    """Whether an extracted answer equals the reference: exact rational comparison for numbers,
    letters for multiple choice, normalised text for words, math-verify (symbolic) otherwise."""
    if extracted is None:
        return False
    try:
        return _compare(normalize_text(extracted), _read_reference(reference)) is None
    except _TooComplex:
        return False


def grade(response: str | None, reference: str, question: str | None = None) -> Grade:
    """Extract the final claim and verify it; reward is 1.0 for a correct answer and 0.0 otherwise.
    `question`, when given, lets claims restated from it be ignored."""
    if response is None or (early := precheck(response)) is not None:
        return early or failed("empty")
    try:
        ref = _read_reference(reference)
    except _TooComplex:  # an astronomically large reference: only an identical answer matches
        ref = _Reference("math", _clean(normalize_text(reference)))
    answer = _final_answer(_mask_injections(normalize_text(response)), question, _mode(ref))
    if answer.value is None:
        return failed("no answer found")
    inner = answer.inner
    if inner == "multiple answers" and ref.kind == "composite":
        inner = None  # the reference is itself a list, set, tuple or interval
    if inner is not None and _canon(answer.region) == _canon(normalize_text(reference)):
        inner = None  # words the reference itself holds ("\text{not possible}")
    if (failure := answer.outer or inner) is not None:
        return failed(failure, answer.value)
    try:
        failure = _compare(answer.value, ref)
    except _TooComplex:
        failure = "too complex"
    if failure is not None and _canon(answer.region) == _canon(normalize_text(reference)):
        failure = None  # the reference's own text ("\\boxed{7, -2, \\text{ and } -5}"), read whole
    return Grade(answer.value, failure is None, 1.0 if failure is None else 0.0, failure)
