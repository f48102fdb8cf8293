"""Money over time: the one place where a USD/hour rate meets elapsed time.

A charge for ``rate`` over ``[start, end)`` is computed as ``F(end) - F(start)``, where
``F(t) = rate * hours(t - epoch)`` rounded once, from the exact rational, to a whole
nanodollar (``QUANTUM``).
Because every charge is a difference of the same anchored function, charges telescope
exactly: accruing ``t0 → t1`` and then ``t1 → t2`` at one rate gives, to the last digit, what
accruing ``t0 → t2`` gives. That is what lets a pod's spend be resumed after a restart from its
annotations without double-counting or losing a fraction of a cent, and what lets a budget's
spend equal the sum of its pods' spend exactly.

All arithmetic here uses an explicit context, so a caller that changed the thread's decimal
context cannot make the ledger round differently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

ZERO = Decimal(0)
QUANTUM = Decimal("1e-9")  # USD; ledger figures are multiples of this
HOUR_MICROS = Decimal(3_600_000_000)

# Read-only: the context every ledger computation runs under (never mutated).
MONEY_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def micros_between(start: datetime, end: datetime) -> int:
    """Exact whole microseconds from ``start`` to ``end`` (negative when end is earlier)."""
    delta = end - start
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _round_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        quotient += 1
    return quotient


def cost_between(rate: Decimal, start: datetime, end: datetime) -> Decimal:
    """USD charged at ``rate`` (USD/hour) from ``start`` to ``end``; zero when end <= start or rate <= 0.

    ``F(t)`` is taken in whole nanodollars, rounded half-even from the exact rational
    ``rate * micros(t - epoch) / 3.6e9`` (integer arithmetic: no intermediate rounding at all).
    """
    if rate <= ZERO or end <= start:
        return ZERO
    numerator, denominator = rate.as_integer_ratio()
    numerator *= 10  # nanodollars = rate * micros * 1e9 / 3.6e9 = rate * micros * 10 / 36
    denominator *= 36
    to_end, to_start = end - _EPOCH, start - _EPOCH
    end_micros = (to_end.days * 86_400 + to_end.seconds) * 1_000_000 + to_end.microseconds
    start_micros = (to_start.days * 86_400 + to_start.seconds) * 1_000_000 + to_start.microseconds
    nanos = _round_half_even(numerator * end_micros, denominator) - _round_half_even(
        numerator * start_micros, denominator
    )
    return MONEY_CONTEXT.multiply(Decimal(nanos), QUANTUM)


def share_before(amount: Decimal, start: datetime, end: datetime, boundary: datetime) -> Decimal:
    """The part of ``amount``, spread evenly over ``[start, end]``, that falls before ``boundary``."""
    if boundary <= start:
        return ZERO
    if boundary >= end:
        return amount
    ctx = MONEY_CONTEXT
    part = ctx.divide(
        ctx.multiply(amount, Decimal(micros_between(start, boundary))),
        Decimal(micros_between(start, end)),
    )
    return part.quantize(QUANTUM, context=ctx)


def usd(amount: Decimal) -> str:
    """A dollar amount for people: two places, no exponent."""
    return f"{amount.quantize(Decimal('0.01'), context=MONEY_CONTEXT):f}"


def plain(amount: Decimal) -> str:
    """A decimal as a plain string without exponent, e.g. ``80`` rather than ``8E+1``."""
    return f"{amount.normalize(context=MONEY_CONTEXT):f}"
