"""The procedural problem generator: `generate(skill, params, seed)` → a `Problem` whose answer is
computed exactly (int or `fractions.Fraction`), never guessed, with a worked solution.

Determinism: the same (skill, params, seed, split) always gives the same problem.
Held-out isolation: every problem belongs to one content partition, decided by a hash of its
skill and its numbers (not its surface wording, so a re-worded copy is still the same problem).
One bucket in `HELDOUT_MODULUS` is reserved for evaluation: `split="train"` never returns such a
problem and `split="heldout"` only returns such problems, so training and evaluation problems
are disjoint by construction, whatever seeds either side uses.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from coevo.tasks.problem import Problem, Provenance
from coevo.tasks.skills import get_skill

Split = Literal["train", "heldout"]
GENERATOR_VERSION = "procedural:v1"
HELDOUT_MODULUS = 8
# Re-draws allowed to land in the requested partition (each succeeds with p ≥ 1/8).
MAX_DRAWS = 200

NAMES = ("Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kira", "Leo")
OBJECTS = (
    "apples",
    "marbles",
    "stickers",
    "pencils",
    "books",
    "coins",
    "shells",
    "cookies",
    "cards",
    "stamps",
)
PLACES = ("in the garden", "at the library", "on the bus", "in the classroom", "at the market", "in the park")

Number = int | Fraction


class PartitionExhaustedError(RuntimeError):
    """A (skill, levels) whose few distinct problems all fall outside the requested split."""


@dataclass(frozen=True)
class Draft:
    """What a skill's template produces before distractors and packaging."""

    context: str  # sentences that set the scene (may be empty)
    ask: str  # the question sentence
    answer: Number
    steps: list[str]  # worked solution, one line per step


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes (unlike `hash`)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big") >> 1


def render(value: Number) -> str:
    """An exact answer as text: integers plainly, terminating decimals as decimals, else "p/q"."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
    return f"{float(value):.{places}f}"


def _n(rng: random.Random, digits: int) -> int:
    """A whole number with exactly `digits` digits."""
    return rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def _digits_of(value: int, width: int) -> list[int]:
    return [(value // 10**i) % 10 for i in range(width)]


# ----------------------------------------------------------------------------- arithmetic skills


def _one_operation_per_line(numbers: list[int], op: str) -> list[str]:
    """The worked solution of a sum or difference of several terms: one operation per line, left to
    right, each on the running result ("9 - 1 = 8", "8 - 2 = 6"). A 135M model cannot evaluate a
    three-term expression in one go; written this way, every line is one two-term operation."""
    lines, running = [], numbers[0]
    for x in numbers[1:]:
        after = running + x if op == "+" else running - x
        lines.append(f"{running} {op} {x} = {after}")
        running = after
    return lines


def _add_no_carry(rng: random.Random, digits: int, steps: int) -> Draft:
    terms = steps + 1
    columns: list[list[int]] = []
    for col in range(digits):
        lead = col == digits - 1
        minimum = 1 if lead or digits == 1 else 0
        budget = 9 - minimum * terms
        order = list(range(terms))
        rng.shuffle(order)
        column = [minimum] * terms
        for i in order:
            extra = rng.randint(0, budget)
            column[i] += extra
            budget -= extra
        columns.append(column)
    numbers = [sum(columns[c][t] * 10**c for c in range(digits)) for t in range(terms)]
    expr = " + ".join(map(str, numbers))
    return Draft("", f"What is {expr}?", sum(numbers), _one_operation_per_line(numbers, "+"))


def _add_carry(rng: random.Random, digits: int, steps: int) -> Draft:
    while True:
        numbers = [_n(rng, digits) for _ in range(steps + 1)]
        carries = any(sum(_digits_of(x, digits)[c] for x in numbers) >= 10 for c in range(digits))
        if carries:
            break
    expr = " + ".join(map(str, numbers))
    return Draft("", f"What is {expr}?", sum(numbers), _one_operation_per_line(numbers, "+"))


def _sub_no_borrow(rng: random.Random, digits: int, steps: int) -> Draft:
    while True:
        top = _n(rng, digits)
        subtrahends = [0] * steps
        for c, d in enumerate(_digits_of(top, digits)):
            budget = d
            for i in rng.sample(range(steps), steps):
                take = rng.randint(0, budget)
                subtrahends[i] += take * 10**c
                budget -= take
        if all(subtrahends):
            break
    expr = " - ".join(map(str, [top, *subtrahends]))
    lines = _one_operation_per_line([top, *subtrahends], "-")
    return Draft("", f"What is {expr}?", top - sum(subtrahends), lines)


def _sub_borrow(rng: random.Random, digits: int, steps: int) -> Draft:
    while True:
        top = _n(rng, digits)
        subtrahends = [rng.randint(1, max(1, top // steps - 1)) for _ in range(steps)]
        if sum(subtrahends) >= top:
            continue
        running, borrowed = top, False
        for s in subtrahends:
            pairs = zip(_digits_of(running, digits), _digits_of(s, digits), strict=True)
            borrowed |= any(a < b for a, b in pairs)
            running -= s
        if borrowed:
            break
    expr = " - ".join(map(str, [top, *subtrahends]))
    lines = _one_operation_per_line([top, *subtrahends], "-")
    return Draft("", f"What is {expr}?", top - sum(subtrahends), lines)


def _multiplication(rng: random.Random, digits: int, steps: int) -> Draft:
    factors = [_n(rng, digits), _n(rng, max(1, digits - 1))]
    if steps == 2:
        factors.append(rng.randint(2, 9))
    lines, running = [], factors[0]
    for f in factors[1:]:
        lines.append(f"{running} × {f} = {running * f}")
        running *= f
    expr = " × ".join(map(str, factors))
    return Draft("", f"What is {expr}?", running, lines)


def _division_remainder(rng: random.Random, digits: int, steps: int) -> Draft:
    divisor = rng.randint(2, 9) if steps == 1 else rng.randint(11, 99)
    # The dividend has more digits than the divisor (a 2-digit divisor lifts 2 digits to 3).
    size = max(digits, len(str(divisor)) + 1)
    dividend = _n(rng, size)
    while dividend % divisor == 0:
        dividend = _n(rng, size)
    q, r = divmod(dividend, divisor)
    line = f"{dividend} = {divisor} × {q} + {r}"
    if rng.random() < 0.5:
        return Draft("", f"What is the remainder when {dividend} is divided by {divisor}?", r, [line])
    ask = f"What is the whole-number quotient when {dividend} is divided by {divisor} (ignore the remainder)?"
    return Draft("", ask, q, [line])


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _evaluate(values: list[int], ops: list[str]) -> int:
    """Left-to-right with × before + and -; `values`/`ops` hold no brackets."""
    values, ops = list(values), list(ops)
    while "×" in ops:
        i = ops.index("×")
        values[i : i + 2] = [values[i] * values[i + 1]]
        del ops[i]
    result = values[0]
    for op, v in zip(ops, values[1:], strict=True):
        result = _apply(op, result, v)
    return result


def _order_of_operations(rng: random.Random, digits: int, steps: int) -> Draft:
    """`steps` operators; from three operators on, one "a op b" pair is bracketed."""
    values = [_n(rng, digits) for _ in range(steps + 1)]
    ops = [rng.choice("+-×") for _ in range(steps)]
    ops[rng.randrange(steps)] = "×"  # precedence must matter
    shown = [str(v) for v in values]
    expr = shown[0] + "".join(f" {op} {v}" for op, v in zip(ops, shown[1:], strict=True))
    lines: list[str] = []
    if steps >= 3:
        i = rng.randrange(steps)
        shown[i], shown[i + 1] = f"({shown[i]}", f"{shown[i + 1]})"
        expr = shown[0] + "".join(f" {op} {v}" for op, v in zip(ops, shown[1:], strict=True))
        inner = _apply(ops[i], values[i], values[i + 1])
        lines.append(f"Brackets first: {values[i]} {ops[i]} {values[i + 1]} = {inner}")
        values[i : i + 2] = [inner]
        del ops[i]
    answer = _evaluate(values, ops)
    lines.append(f"Then × before + and -, left to right: {answer}")
    return Draft("", f"What is {expr}?", answer, lines)


def _fractions(rng: random.Random, digits: int, steps: int) -> Draft:
    low, high = (2, 9) if digits == 1 else (10, 20)
    terms = [Fraction(rng.randint(1, d - 1), d) for d in (rng.randint(low, high) for _ in range(steps + 1))]
    ops = [rng.choice("+-") for _ in range(steps)]
    total, lines = terms[0], []
    for op, t in zip(ops, terms[1:], strict=True):
        new = total + t if op == "+" else total - t
        lines.append(f"{render(total)} {op} {t.numerator}/{t.denominator} = {render(new)}")
        total = new
    expr = f"{terms[0].numerator}/{terms[0].denominator}" + "".join(
        f" {op} {t.numerator}/{t.denominator}" for op, t in zip(ops, terms[1:], strict=True)
    )
    return Draft("", f"What is {expr}? Give the answer as a fraction in lowest terms.", total, lines)


def _decimals(rng: random.Random, digits: int, steps: int) -> Draft:
    places = rng.randint(1, 2)
    values = [Fraction(_n(rng, digits + places), 10**places) for _ in range(steps + 1)]
    ops = [rng.choice("+-") for _ in range(steps)]
    total, lines = values[0], []
    for op, v in zip(ops, values[1:], strict=True):
        new = total + v if op == "+" else total - v
        lines.append(f"{render(total)} {op} {render(v)} = {render(new)}")
        total = new
    expr = render(values[0]) + "".join(f" {op} {render(v)}" for op, v in zip(ops, values[1:], strict=True))
    return Draft("", f"What is {expr}?", total, lines)


def _percentages(rng: random.Random, digits: int, steps: int) -> Draft:
    percent = rng.choice((10, 20, 25, 50, 75, 5, 15, 30, 40, 60, 12, 35))
    base = _n(rng, digits)
    if digits <= 2 or steps > 1:
        # A whole-number part at the easiest level, and whole objects in the stock questions.
        step = 100 // math.gcd(percent, 100)
        base = max(base // step, 1) * step
    part = Fraction(percent * base, 100)
    lines = [f"{percent}% of {base} = {percent}/100 × {base} = {render(part)}"]
    if steps == 1:
        return Draft("", f"What is {percent}% of {base}?", part, lines)
    obj = rng.choice(OBJECTS)
    if rng.random() < 0.5:
        lines.append(f"{base} + {render(part)} = {render(base + part)}")
        ask = f"A shop had {base} {obj}. Its stock grew by {percent}%. How many {obj} does it have now?"
        return Draft("", ask, base + part, lines)
    lines.append(f"{base} - {render(part)} = {render(base - part)}")
    ask = f"A shop had {base} {obj}. Its stock fell by {percent}%. How many {obj} does it have now?"
    return Draft("", ask, base - part, lines)


def _ratios(rng: random.Random, digits: int, steps: int) -> Draft:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    while a == b:
        b = rng.randint(1, 9)
    unit = max(1, _n(rng, digits) // max(a, b)) if digits > 1 else rng.randint(1, 5)
    x, y = rng.sample(OBJECTS, 2)
    context = f"In a box, the ratio of {x} to {y} is {a}:{b}. There are {a * unit} {x}."
    lines = [f"One part is {a * unit} ÷ {a} = {unit}", f"{y}: {b} × {unit} = {b * unit}"]
    if steps == 1:
        return Draft(context, f"How many {y} are there?", b * unit, lines)
    lines.append(f"Total: {a * unit} + {b * unit} = {(a + b) * unit}")
    return Draft(context, f"How many {x} and {y} are there altogether?", (a + b) * unit, lines)


_UNIT_CHAINS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("kilometres", 1000), ("metres", 100), ("centimetres", 1)),
    (("hours", 60), ("minutes", 60), ("seconds", 1)),
    (("kilograms", 1000), ("grams", 1000), ("milligrams", 1)),
    (("litres", 1000), ("millilitres", 1)),
    (("days", 24), ("hours", 60), ("minutes", 1)),
    (("metres", 100), ("centimetres", 10), ("millimetres", 1)),
)


def _unit_conversion(rng: random.Random, digits: int, steps: int) -> Draft:
    chains = [c for c in _UNIT_CHAINS if len(c) > steps]
    chain = rng.choice(chains)
    start = rng.randint(0, len(chain) - 1 - steps)
    (big, _), (small, _) = chain[start], chain[start + steps]
    factor = 1
    for _, f in chain[start : start + steps]:
        factor *= f
    value = _n(rng, digits)
    if rng.random() < 0.5:
        lines = [f"1 {big[:-1]} = {factor} {small}", f"{value} × {factor} = {value * factor}"]
        return Draft("", f"How many {small} are in {value} {big}?", value * factor, lines)
    lines = [f"1 {big[:-1]} = {factor} {small}", f"{value * factor} ÷ {factor} = {value}"]
    return Draft("", f"How many {big} are {value * factor} {small}?", value, lines)


def _rounding(rng: random.Random, digits: int, steps: int) -> Draft:
    value = _n(rng, digits)
    place = 10 ** rng.randint(1, digits - 1)
    rounded = (value + place // 2) // place * place  # half up, as taught in school
    names = {10: "ten", 100: "hundred", 1000: "thousand", 10**4: "ten thousand", 10**5: "hundred thousand"}
    name = names.get(place, "million")
    return Draft("", f"Round {value} to the nearest {name}.", rounded, [f"{value} → {rounded}"])


def _comparison(rng: random.Random, digits: int, steps: int) -> Draft:
    count = steps + 1
    places = digits - 1
    base = _n(rng, 1)
    # One digit: distinct whole numbers. More digits: decimals sharing their whole part, so the
    # comparison has to look past it (and the longer the decimals, the closer the values).
    pool = range(1, 10) if places == 0 else range(base * 10**places, (base + 1) * 10**places)
    ordered = sorted(Fraction(v, 10**places) for v in rng.sample(pool, count))
    shown = [render(v) for v in rng.sample(ordered, count)]
    if rng.random() < 0.5:
        return Draft("", f"Which is the largest of these numbers: {', '.join(shown)}?", ordered[-1], [])
    return Draft("", f"Which is the smallest of these numbers: {', '.join(shown)}?", ordered[0], [])


def _linear_equations(rng: random.Random, digits: int, steps: int) -> Draft:
    x = rng.randint(-9, 20) if digits > 1 else rng.randint(1, 9)
    a = rng.randint(2, 9) if steps > 1 else 1
    b = _n(rng, digits) * rng.choice((1, -1) if digits > 1 else (1,))
    if steps <= 2:
        c = a * x + b
        lhs = f"{'' if a == 1 else a}x {'+' if b >= 0 else '-'} {abs(b)}"
        lines = [f"{lhs} = {c}", f"{'' if a == 1 else a}x = {c - b}", f"x = {x}"]
        return Draft("", f"Solve for x: {lhs} = {c}.", x, lines)
    d = rng.randint(1, a - 1)
    e = (a - d) * x + b
    lhs = f"{a}x {'+' if b >= 0 else '-'} {abs(b)}"
    lines = [f"{a}x - {d}x = {e} - ({b})", f"{a - d}x = {e - b}", f"x = {x}"]
    return Draft("", f"Solve for x: {lhs} = {d}x + {e}.", x, lines)


# ----------------------------------------------------------------------------- word problems


def _word_two_step(rng: random.Random, digits: int, steps: int) -> Draft:
    name, obj, place = rng.choice(NAMES), rng.choice(OBJECTS), rng.choice(PLACES)
    a, b, c = _n(rng, digits), _n(rng, digits), _n(rng, digits)
    template = rng.randrange(4)
    if template == 0:
        a += c  # so the count never goes negative
        ctx = f"{name} has {a} {obj} {place}. {name} gets {b} more and then gives away {c}."
        lines = [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"]
        return Draft(ctx, f"How many {obj} does {name} have now?", a + b - c, lines)
    if template == 1:
        packs, per = rng.randint(2, 9), a
        ctx = f"{name} buys {packs} bags of {obj} with {per} in each bag, and finds {b} more {place}."
        lines = [f"{packs} × {per} = {packs * per}", f"{packs * per} + {b} = {packs * per + b}"]
        return Draft(ctx, f"How many {obj} does {name} have in total?", packs * per + b, lines)
    if template == 2:
        friends = rng.randint(2, 9)
        total = friends * a
        ctx = (
            f"{name} shares {total} {obj} equally among {friends} friends {place}. "
            f"Each friend then buys {b} more."
        )
        lines = [f"{total} ÷ {friends} = {a}", f"{a} + {b} = {a + b}"]
        return Draft(ctx, f"How many {obj} does each friend have now?", a + b, lines)
    count = rng.randint(2, 9)
    paid = count * a + c
    ctx = f"{name} buys {count} {obj} {place} at ${a} each and pays with ${paid}."
    lines = [f"{count} × {a} = {count * a}", f"{paid} - {count * a} = {c}"]
    return Draft(ctx, f"How many dollars of change does {name} get?", c, lines)


def _word_multi_step(rng: random.Random, digits: int, steps: int) -> Draft:
    name, obj, place = rng.choice(NAMES), rng.choice(OBJECTS), rng.choice(PLACES)
    value = _n(rng, digits)
    sentences = [f"{name} starts with {value} {obj} {place}."]
    lines: list[str] = []
    for _ in range(steps):
        move = rng.randrange(4)
        if move == 0:
            x = _n(rng, digits)
            sentences.append(rng.choice((f"Then {name} buys {x} more.", f"A friend gives {name} {x} more.")))
            lines.append(f"{value} + {x} = {value + x}")
            value += x
        elif move == 1 and value > 1:
            x = rng.randint(1, value - 1)
            sentences.append(rng.choice((f"Then {name} gives away {x}.", f"Then {name} loses {x}.")))
            lines.append(f"{value} - {x} = {value - x}")
            value -= x
        elif move == 2 and value < 10**digits:
            k = rng.randint(2, 3)
            sentences.append(f"Then the number of {obj} {'doubles' if k == 2 else 'triples'}.")
            lines.append(f"{value} × {k} = {value * k}")
            value *= k
        else:
            k = next((k for k in (2, 3, 4, 5) if value % k == 0 and value > k), 0)
            if k == 0:
                sentences.append(f"Then {name} buys {value} more, doubling the collection.")
                lines.append(f"{value} + {value} = {2 * value}")
                value *= 2
                continue
            sentences.append(f"Then {name} splits them equally into {k} boxes and keeps one box.")
            lines.append(f"{value} ÷ {k} = {value // k}")
            value //= k
    return Draft(" ".join(sentences), f"How many {obj} does {name} have at the end?", value, lines)


def _distractor(rng: random.Random, digits: int) -> str:
    name, obj, place = rng.choice(NAMES), rng.choice(OBJECTS), rng.choice(PLACES)
    n = _n(rng, max(1, digits))
    return rng.choice(
        (
            f"{name} has {n} {obj} {place}.",
            f"There are {n} {obj} {place}.",
            f"{name} is {rng.randint(8, 14)} years old.",
            f"Yesterday, {name} counted {n} {obj}.",
        )
    )


Template = Callable[[random.Random, int, int], Draft]

TEMPLATES: dict[str, Template] = {
    "add_no_carry": _add_no_carry,
    "add_carry": _add_carry,
    "sub_no_borrow": _sub_no_borrow,
    "sub_borrow": _sub_borrow,
    "multiplication": _multiplication,
    "division_remainder": _division_remainder,
    "order_of_operations": _order_of_operations,
    "fractions": _fractions,
    "decimals": _decimals,
    "percentages": _percentages,
    "ratios": _ratios,
    "unit_conversion": _unit_conversion,
    "rounding": _rounding,
    "comparison": _comparison,
    "linear_equations": _linear_equations,
    "word_two_step": _word_two_step,
    "word_multi_step": _word_multi_step,
}


def content_key(skill: str, draft: Draft) -> str:
    """What identifies a problem's content: its skill and its numbers (not names or objects)."""
    numbers = re.findall(r"\d+", f"{draft.context} {draft.ask}")
    return f"{skill}:{','.join(numbers)}:{render(draft.answer)}"


def is_heldout_key(key: str) -> bool:
    return derive_seed("partition", key) % HELDOUT_MODULUS == 0


def generate(
    skill: str, params: Mapping[str, float] | Sequence[float], seed: int, split: Split = "train"
) -> Problem:
    """One problem of `skill`.

    `params` is either a mapping of raw levels ({"digits": 2, "steps": 1, "distractors": 0};
    rounded and clipped into the skill's ranges) or a normalised vector in [0, 1]^3.
    """
    spec = get_skill(skill)
    levels = spec.clip(params) if isinstance(params, Mapping) else spec.denormalize(list(params))
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    for draw in range(MAX_DRAWS):
        rng = random.Random(derive_seed(GENERATOR_VERSION, skill, seed, draw))
        draft = TEMPLATES[skill](rng, levels["digits"], levels["steps"])
        if is_heldout_key(content_key(skill, draft)) == (split == "heldout"):
            break
    else:
        raise PartitionExhaustedError(f"no {split} problem for {skill} {levels} in {MAX_DRAWS} draws")
    distractors = [_distractor(rng, levels["digits"]) for _ in range(levels["distractors"])]
    question = " ".join(part for part in (draft.context, *distractors, draft.ask) if part)
    answer = render(draft.answer)
    solution = "\n".join([*draft.steps, f"The answer is {answer}."])
    return Problem(
        id=Problem.make_id(question, answer),
        question=question,
        answer=answer,
        solution=solution,
        skills=[skill],
        difficulty={name: float(v) for name, v in levels.items()},
        provenance=Provenance(
            source="procedural",
            author=GENERATOR_VERSION,
            details={"skill": skill, "params": levels, "seed": seed, "split": split},
        ),
    )
