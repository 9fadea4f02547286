#!/usr/bin/env python3
"""Reference values of the chi-square survival function at large degrees of freedom.

Writes test/fixtures/chi-square-large-df.json, which test/core/stats.test.ts checks
`chiSquareSf` against (relative error ≤ 1e-12). Standard library only (the `decimal` module at
90 significant digits), so it runs anywhere:

    python3 scripts/chi-square-reference.py            # rewrite the fixture
    python3 scripts/chi-square-reference.py --stdout   # print it instead

Method (no special-function library involved):
- P(a, x) = x^a e^(−x) / Γ(a + 1) · Σₙ xⁿ / ((a+1)(a+2)…(a+n)), the power series of the lower
  regularized incomplete gamma function, summed in 90-digit decimal arithmetic until a term is
  below 1e-95 of the sum (all terms are positive: no cancellation);
- ln Γ(a + 1) by Stirling's series with 12 Bernoulli terms; the first omitted term is below
  1e-60 for the a ≥ 500 used here;
- P(χ²_df > x) = Q(df/2, x/2) = 1 − P(df/2, x/2). Every point has Q ≥ 1e-30, so the
  subtraction leaves at least 60 correct digits.
The inputs are x = df + z·√(2·df) for z from −5 to 9 (the body and both tails of the
distribution) at df from 1e3 to 1e8, where the TypeScript's earlier algorithm lost up to ~8
digits (ln Γ(df/2) of size ~1e9 carried into the exponent).

The fixture is piped through the repo's prettier when node_modules is present, so
`npm run format:check` accepts it as generated.
"""

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal, getcontext

getcontext().prec = 90
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "test", "fixtures", "chi-square-large-df.json")

PI = Decimal(
    "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798"
)
# B₂ₖ for k = 1..12, as exact fractions (numerator, denominator).
BERNOULLI = [
    (1, 6), (-1, 30), (1, 42), (-1, 30), (5, 66), (-691, 2730), (7, 6), (-3617, 510),
    (43867, 798), (-174611, 330), (854513, 138), (-236364091, 2730),
]


def log_gamma(z):
    """ln Γ(z) for z ≥ 500 by Stirling's series."""
    z = Decimal(z)
    result = (z - Decimal("0.5")) * z.ln() - z + (2 * PI).ln() / 2
    power = z
    for k, (num, den) in enumerate(BERNOULLI, start=1):
        result += Decimal(num) / Decimal(den) / (Decimal(2 * k) * Decimal(2 * k - 1) * power)
        power *= z * z
    return result


def lower_regularized_gamma(a, x):
    """P(a, x) by its power series (a ≥ 500, x > 0)."""
    a = Decimal(a)
    x = Decimal(x)
    term = Decimal(1)
    total = Decimal(1)
    n = 0
    threshold = Decimal(10) ** -95
    while True:
        n += 1
        term = term * x / (a + n)
        total += term
        if term < total * threshold and x < a + n:
            break
    log_front = a * x.ln() - x - log_gamma(a + 1)
    return log_front.exp() * total


def chi_square_sf(x, df):
    return Decimal(1) - lower_regularized_gamma(Decimal(df) / 2, Decimal(x) / 2)


def main():
    cases = []
    for df in [1e3, 1e5, 1e6, 1e7, 1e8]:
        for z in [-5, -2, -0.5, 0, 1, 3, 6, 9]:
            x = df + z * (2 * df) ** 0.5
            value = chi_square_sf(Decimal(repr(x)), Decimal(repr(df)))
            cases.append({"x": x, "df": df, "p": float(value)})
    text = json.dumps(
        {
            "generatedBy": "scripts/chi-square-reference.py (decimal, 90 digits: power series of P(a, x), Stirling ln Γ)",
            "chiSquareSf": cases,
        },
        indent=2,
        ensure_ascii=False,
    )
    prettier = os.path.join(ROOT, "node_modules", ".bin", "prettier")
    if os.path.exists(prettier) and shutil.which("node"):
        text = subprocess.run(
            [prettier, "--stdin-filepath", OUTPUT], input=text, capture_output=True, text=True, check=True
        ).stdout
    if "--stdout" in sys.argv:
        print(text)
    else:
        with open(OUTPUT, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")


if __name__ == "__main__":
    main()
