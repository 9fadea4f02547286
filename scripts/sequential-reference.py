#!/usr/bin/env python3
"""Reference values for the sequential mode of compareVariation (docs/statistics.md).

Writes test/fixtures/sequential-reference.json, which test/core/stats.test.ts checks the
sequential comparisons of the stats-reference.json cases against. Standard library only:

    python3 scripts/sequential-reference.py            # rewrite the fixture
    python3 scripts/sequential-reference.py --stdout   # print it instead

Computed differently from the TypeScript, so that a slip in either shows:
- the variances from the raw definitions (sample variance of each arm and of both merged,
  with Python's exact rational arithmetic via fractions.Fraction for the sums of squares);
- p = min(1, 1/Λ) with Λ = √(V/(V+τ²))·exp(τ²Δ²/(2V(V+τ²))), τ² = ρ²·N·V, literally;
- the lift interval not from the quadratic's roots but by bisection, 200 steps, on the test
  itself: k is in the interval when (μt − k·μc)² ≤ c·(at + k²·ac), searched outward from the
  estimate; an end beyond 1e6 (or a set that is unbounded) is reported as null.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "test", "fixtures", "stats-reference.json")
OUTPUT = os.path.join(ROOT, "test", "fixtures", "sequential-reference.json")


def sample_variance(n, s, ss):
    n, s, ss = Fraction(n), Fraction(s), Fraction(ss)
    centred = ss - s * s / n
    if centred <= Fraction(1, 10**12) * ss:
        return Fraction(0)
    return centred / (n - 1)


def sequential(control, treatment, alpha, n_star, non_negative):
    nc, nt = control["n"], treatment["n"]
    mc = Fraction(control["sum"]) / nc
    mt = Fraction(treatment["sum"]) / nt
    vc = sample_variance(nc, control["sum"], control["sumSq"])
    vt = sample_variance(nt, treatment["sum"], treatment["sumSq"])
    vp = sample_variance(
        nc + nt, Fraction(control["sum"]) + Fraction(treatment["sum"]),
        Fraction(control["sumSq"]) + Fraction(treatment["sumSq"]),
    )
    welch = vc / nc + vt / nt
    pooled = vp * (Fraction(1, nc) + Fraction(1, nt))
    v = max(welch, pooled)
    lam = max(Fraction(0), (pooled - welch) / (Fraction(1, nc) + Fraction(1, nt)))
    ac = float((vc + lam) / nc)
    at = float((vt + lam) / nt)
    v = float(v)
    n = nc + nt
    l = -2 * math.log(alpha)
    rho2 = (l + math.log(l + 1)) / n_star
    tau2 = rho2 * n * v
    delta = float(mt - mc)
    log_lambda = 0.5 * math.log(v / (v + tau2)) + tau2 * delta * delta / (2 * v * (v + tau2))
    p = min(1.0, math.exp(-log_lambda))
    r = rho2 * n
    c = (1 + r) / r * (math.log(1 + r) - 2 * math.log(alpha))
    fmc, fmt = float(mc), float(mt)

    def accepted(k):
        return (fmt - k * fmc) ** 2 <= c * (at + k * k * ac)

    k_hat = fmt / fmc
    far = 1e6

    def edge(direction):
        # bisection between an accepted point (the estimate) and a rejected one, if any
        inside = k_hat
        limit = k_hat + direction * far
        if non_negative and direction < 0:
            limit = 0.0
            if accepted(0.0):
                return 0.0
        elif accepted(limit):
            return None
        outside = limit
        for _ in range(200):
            mid = (inside + outside) / 2
            if accepted(mid):
                inside = mid
            else:
                outside = mid
        return (inside + outside) / 2

    lo, hi = edge(-1), edge(1)
    ci = [None if lo is None else lo - 1, None if hi is None else hi - 1]
    se = math.sqrt(at + k_hat * k_hat * ac) / fmc
    return {"pValue": p, "ci": ci, "se": se, "significant": p < alpha}


def main():
    with open(SOURCE) as f:
        source = json.load(f)
    cases = []
    for case in source["welch"]:
        c, t = case["control"], case["treatment"]
        binary = all(s["sum"] == s["sumSq"] and float(s["sum"]).is_integer() and 0 <= s["sum"] <= s["n"] for s in (c, t))
        result = sequential(c, t, case["alpha"], case["nStar"], binary)
        lift = (t["sum"] / t["n"] - c["sum"] / c["n"]) / (c["sum"] / c["n"])
        good = lift > 0 if case["higherIsBetter"] else lift < 0
        result["verdict"] = "inconclusive" if not result["significant"] else ("winner" if good else "loser")
        del result["significant"]
        cases.append({"name": case["name"], **result})
    text = json.dumps(
        {"generatedBy": "scripts/sequential-reference.py (exact fractions, literal Λ, bisection)", "cases": cases},
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
