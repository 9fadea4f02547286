#!/usr/bin/env python3
"""CUPED reference values (docs/statistics.md "CUPED") from statsmodels' OLS.

For each scenario, seeded per-visitor data (y after exposure, x the same metric before it) for a
control and a treatment arm; statsmodels fits `y ~ T + x` (the CUPED estimate is T's coefficient
and its classical standard error) and `y ~ T` (the unadjusted one). The fixture holds each arm's
sums (n, Σy, Σy², Σx, Σx², Σxy) — all that src/core/stats/cuped.ts receives — and statsmodels'
numbers; test/core/cuped.test.ts checks them.

Run: apt-get install python3-statsmodels python3-numpy, then
     /usr/bin/python3 scripts/cuped-reference.py > test/fixtures/cuped-reference.json
"""
import json
import sys

import numpy as np
import statsmodels
import statsmodels.formula.api as smf


def arm_sums(x, y):
    return {
        "n": int(len(y)),
        "sumY": float(np.sum(y)),
        "sumY2": float(np.sum(y * y)),
        "sumX": float(np.sum(x)),
        "sumX2": float(np.sum(x * x)),
        "sumXY": float(np.sum(x * y)),
    }


def scenario(name, rng, nc, nt, draw):
    xc, yc = draw(rng, nc, 0)
    xt, yt = draw(rng, nt, 1)
    x = np.concatenate([xc, xt])
    y = np.concatenate([yc, yt])
    t = np.concatenate([np.zeros(nc), np.ones(nt)])
    data = {"y": y, "x": x, "T": t}
    adjusted = smf.ols("y ~ T + x", data=data).fit()
    plain = smf.ols("y ~ T", data=data).fit()
    return {
        "name": name,
        "control": arm_sums(xc, yc),
        "treatment": arm_sums(xt, yt),
        "difference": float(adjusted.params["T"]),
        "se": float(adjusted.bse["T"]),
        "theta": float(adjusted.params["x"]),
        "df": float(adjusted.df_resid),
        "unadjustedDifference": float(plain.params["T"]),
        "unadjustedSe": float(plain.bse["T"]),
    }


def conversions(rng, n, arm):
    # Visitors who converted before are likelier to convert again; the treatment adds 2 points.
    before = (rng.random(n) < 0.15).astype(float)
    p = 0.05 + 0.25 * before + 0.02 * arm
    return before, (rng.random(n) < p).astype(float)


def counts(rng, n, arm):
    habit = rng.gamma(2.0, 1.0, n)
    before = rng.poisson(habit).astype(float)
    return before, rng.poisson(habit * (1.0 + 0.05 * arm)).astype(float)


def revenue(rng, n, arm):
    spend = rng.lognormal(3.0, 1.0, n)
    before = np.round(spend * (rng.random(n) < 0.4) * 100)
    after = np.round(spend * (1.0 + 0.03 * arm) * (rng.random(n) < 0.35) * 100)
    return before, after


def unrelated(rng, n, arm):
    return rng.poisson(1.0, n).astype(float), (rng.random(n) < 0.1 + 0.01 * arm).astype(float)


def imbalanced(rng, n, arm):
    # The treatment's visitors happen to be heavier before (x̄ differs between arms).
    before = rng.poisson(1.0 + 0.3 * arm, n).astype(float)
    return before, before * 0.5 + rng.normal(0.0, 1.0, n)


def main():
    rng = np.random.default_rng(20261206)
    cases = [
        scenario("conversion rate, converted before", rng, 4000, 4000, conversions),
        scenario("event count, Poisson habit", rng, 3000, 3200, counts),
        scenario("revenue in cents", rng, 2500, 2500, revenue),
        scenario("covariate unrelated to y", rng, 2000, 2000, unrelated),
        scenario("x imbalanced between arms, unequal arms", rng, 800, 1500, imbalanced),
    ]
    json.dump(
        {"generator": "scripts/cuped-reference.py", "statsmodels": statsmodels.__version__, "cases": cases},
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
