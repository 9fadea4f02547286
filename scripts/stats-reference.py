#!/usr/bin/python3
"""Reference values for src/core/stats, from independent implementations.

Writes test/fixtures/stats-reference.json, which test/core/stats.test.ts drives with it.each.
Deterministic: no randomness (the "raw data" cases come from a fixed LCG), fixed inputs, and
the output is piped through the repo's prettier (when node_modules is there) so that
`npm run format:check` accepts the file as generated.

    /usr/bin/python3 scripts/stats-reference.py            # rewrite the fixture
    /usr/bin/python3 scripts/stats-reference.py --stdout   # print it instead

Needs Debian's python3-scipy, python3-statsmodels and python3-mpmath (use /usr/bin/python3).

Where the values come from:
- distributions: mpmath at 50 digits (the truth the TypeScript is held to, ~1e-12), each also
  cross-checked here against scipy (which is itself only good to ~1e-9 for large df);
- Welch: scipy.stats.ttest_ind (raw data) / ttest_ind_from_stats (summaries) for the absolute
  difference, scipy.stats.t for intervals; the relative lift by the delta method in numpy;
- sequential: the mSPRT closed form written directly in numpy (the TypeScript uses an
  algebraically rearranged form);
- Benjamini-Hochberg and Holm: statsmodels.stats.multitest.multipletests;
- sample-ratio mismatch: scipy.stats.chisquare;
- sample size: the normal formula with scipy.stats.norm, cross-checked against
  statsmodels.stats.power.NormalIndPower.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import warnings

import mpmath as mp
import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

mp.mp.dps = 50
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "test", "fixtures", "stats-reference.json")


def close(a, b, rel, name):
    """Sanity check between two reference implementations."""
    if not math.isclose(a, b, rel_tol=rel, abs_tol=1e-300):
        raise AssertionError(f"{name}: {a!r} vs {b!r}")


# --------------------------------------------------------------------------------------------
# Distributions (mpmath truth, scipy cross-check)


def mp_t_cdf(t, df):
    t = mp.mpf(t)
    df = mp.mpf(df)
    x = df / (df + t * t)
    y = t * t / (df + t * t)
    if x < 0.5:
        tail = mp.betainc(df / 2, mp.mpf(1) / 2, 0, x, regularized=True) / 2
    elif df < 1e4:
        tail = (1 - mp.betainc(mp.mpf(1) / 2, df / 2, 0, y, regularized=True)) / 2
    else:
        # mpmath's hypergeometric series is too slow for huge df: integrate the density.
        c = mp.exp(mp.loggamma((df + 1) / 2) - mp.loggamma(df / 2)) / mp.sqrt(df * mp.pi)
        a = -abs(t)
        tail = mp.quad(lambda u: c * (1 + u * u / df) ** (-(df + 1) / 2), [-mp.inf, a - 20, a - 5, a - 1, a])
    return tail if t < 0 else 1 - tail


def mp_t_ppf(p, df):
    if p == 0.5:
        return mp.mpf(0)
    start = float(stats.t.ppf(p, df))
    return mp.findroot(lambda t: mp_t_cdf(t, df) - mp.mpf(p), mp.mpf(start), tol=mp.mpf(10) ** -40)


def mp_norm_ppf(p):
    if p == 0.5:
        return mp.mpf(0)
    start = float(stats.norm.ppf(p))
    return mp.findroot(lambda x: mp.ncdf(x) - mp.mpf(p), mp.mpf(start), tol=mp.mpf(10) ** -45)


def distributions():
    normal_cdf = []
    for x in [-37.5, -20.0, -8.0, -5.0, -1.96, -1.0, -0.3, 0.0, 1e-8, 0.5, 1.6448536269514722, 3.0, 8.0]:
        value = float(mp.ncdf(mp.mpf(x)))
        close(value, float(stats.norm.cdf(x)), 1e-12, f"norm.cdf({x})")
        normal_cdf.append({"x": x, "p": value})
    normal_quantile = []
    for p in [1e-300, 1e-20, 1e-10, 0.001, 0.02, 0.025, 0.05, 0.0243, 0.3, 0.5, 0.8, 0.95, 0.975, 0.999999]:
        value = float(mp_norm_ppf(p))
        close(value, float(stats.norm.ppf(p)), 1e-12, f"norm.ppf({p})")
        normal_quantile.append({"p": p, "x": value})
    t_cdf = []
    t_quantile = []
    for df in [0.5, 1, 2, 2.5, 5, 30, 1000, 5841.742032093565, 1e6, 1e8]:
        for t in [-1000.0, -40.0, -5.0, -2.3, -1.96, -1.0, -0.5, -1e-5, 0.3, 1.5, 4.0]:
            value = float(mp_t_cdf(t, df))
            if value == 0.0:
                continue  # underflows a double: nothing to compare
            close(value, float(stats.t.cdf(t, df)), 1e-8, f"t.cdf({t}, {df})")
            t_cdf.append({"t": t, "df": df, "p": value})
        for p in [1e-15, 1e-6, 0.001, 0.025, 0.05, 0.3, 0.5, 0.95, 0.975]:
            value = float(mp_t_ppf(p, df))
            if p != 0.5:
                close(value, float(stats.t.ppf(p, df)), 1e-8, f"t.ppf({p}, {df})")
            t_quantile.append({"p": p, "df": df, "t": value})
    chi_square_sf = []
    for df in [1, 2, 3, 7]:
        for x in [0.01, 1.0, 5.0, 20.0, 100.0, 800.0]:
            value = float(mp.gammainc(mp.mpf(df) / 2, mp.mpf(x) / 2, mp.inf, regularized=True))
            close(value, float(stats.chi2.sf(x, df)), 1e-12, f"chi2.sf({x}, {df})")
            chi_square_sf.append({"x": x, "df": df, "p": value})
    return {
        "normalCdf": normal_cdf,
        "normalQuantile": normal_quantile,
        "studentTCdf": t_cdf,
        "studentTQuantile": t_quantile,
        "chiSquareSf": chi_square_sf,
    }


# --------------------------------------------------------------------------------------------
# Welch, relative lift, and the full comparison in both modes


def lcg(seed):
    """Numerical Recipes' 32-bit LCG: the same numbers on every platform and numpy version."""
    state = seed
    while True:
        state = (1664525 * state + 1013904223) % 2**32
        yield state / 2**32


def revenue(n, rate, scale, seed):
    """n visitors; a fraction `rate` buys, with an exponential-ish order value of mean `scale`."""
    u = lcg(seed)
    values = []
    for _ in range(n):
        if next(u) < rate:
            values.append(round(-scale * math.log(1 - next(u)), 2))
        else:
            values.append(0.0)
    return values


def conversions(n, converters):
    return [1.0] * converters + [0.0] * (n - converters)


def suff(values):
    return {"n": len(values), "sum": math.fsum(values), "sumSq": math.fsum(v * v for v in values)}


def summary(s):
    n, total, total_sq = s["n"], s["sum"], s["sumSq"]
    m = total / n
    var = max(0.0, (total_sq - total * total / n) / (n - 1))
    return n, m, var


def welch_reference(control, treatment, alpha, raw=None):
    nc, mc, vc = summary(control)
    nt, mt, vt = summary(treatment)
    # Absolute difference: scipy (raw data when we have it, else from the summaries).
    if raw is not None:
        with warnings.catch_warnings():
            # An arm where every visitor converted is constant on purpose (scipy warns about it).
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_ind(raw[1], raw[0], equal_var=False)
    else:
        res = stats.ttest_ind_from_stats(mt, math.sqrt(vt), nt, mc, math.sqrt(vc), nc, equal_var=False)
    wc, wt = vc / nc, vt / nt
    se = math.sqrt(wc + wt)
    df = (wc + wt) ** 2 / (wc**2 / (nc - 1) + wt**2 / (nt - 1))
    diff = mt - mc
    close(float(res.statistic), diff / se, 1e-9, "welch statistic")
    q = float(stats.t.ppf(1 - alpha / 2, df))
    absolute = {
        "estimate": diff,
        "se": se,
        "df": df,
        "pValue": float(res.pvalue),
        "ci": [diff - q * se, diff + q * se],
    }
    # Relative lift (mt - mc)/mc, delta method, same Welch-Satterthwaite df.
    lift = diff / mc
    se_rel = float(np.sqrt(vt / (nt * mc**2) + mt**2 * vc / (nc * mc**4)))
    relative = {
        "estimate": lift,
        "se": se_rel,
        "df": df,
        "pValue": float(2 * stats.t.sf(abs(lift / se_rel), df)),
        "ci": [lift - q * se_rel, lift + q * se_rel],
    }
    return absolute, relative


def sequential_reference(estimate, se, n, alpha, n_star):
    """mSPRT closed form, literally: V = SE^2, tau^2 = rho^2 N V."""
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / n_star
    v = np.float64(se) ** 2
    tau2 = rho2 * n * v
    lam = np.sqrt(v / (v + tau2)) * np.exp(tau2 * estimate**2 / (2 * v * (v + tau2)))
    p = float(min(1.0, 1 / lam))
    half = float(np.sqrt((v + tau2) / tau2 * v * (np.log((v + tau2) / v) - 2 * np.log(alpha))))
    return {"pValue": p, "ci": [estimate - half, estimate + half]}


def verdict(p, alpha, lift, higher_is_better):
    if not p < alpha:
        return "inconclusive"
    return "winner" if (lift > 0) == higher_is_better else "loser"


def welch_and_compare():
    cases = []

    def add(name, control, treatment, alpha, raw=None, higher_is_better=True, n_star=5000):
        absolute, relative = welch_reference(control, treatment, alpha, raw)
        n = control["n"] + treatment["n"]
        seq = sequential_reference(relative["estimate"], relative["se"], n, alpha, n_star)
        cases.append(
            {
                "name": name,
                "control": control,
                "treatment": treatment,
                "alpha": alpha,
                "nStar": n_star,
                "higherIsBetter": higher_is_better,
                "absolute": absolute,
                "relative": relative,
                "fixed": {
                    "pValue": relative["pValue"],
                    "ci": relative["ci"],
                    "verdict": verdict(relative["pValue"], alpha, relative["estimate"], higher_is_better),
                },
                "sequential": {
                    "pValue": seq["pValue"],
                    "ci": seq["ci"],
                    "verdict": verdict(seq["pValue"], alpha, relative["estimate"], higher_is_better),
                },
            }
        )

    # The example (summaries only).
    add(
        "issue example: revenue per visitor",
        {"n": 3407, "sum": 1396.87, "sumSq": 52377.9767},
        {"n": 3461, "sum": 2422.7, "sumSq": 134698.29},
        0.05,
    )
    # Conversion rates, from raw 0/1 data.
    for name, (nc, cc), (nt, ct), alpha, better in [
        ("conversions: clear lift", (1000, 100), (1000, 140), 0.1, True),
        ("conversions: small samples", (40, 3), (45, 9), 0.1, True),
        ("conversions: no difference", (5000, 250), (5000, 252), 0.1, True),
        ("conversions: clear drop", (8000, 800), (8100, 700), 0.05, True),
        ("conversions: drop, lower is better", (8000, 800), (8100, 700), 0.05, False),
        ("conversions: unbalanced arms", (20000, 600), (2500, 95), 0.1, True),
        ("conversions: treatment converts everyone", (200, 150), (200, 200), 0.1, True),
    ]:
        a, b = conversions(nc, cc), conversions(nt, ct)
        add(name, suff(a), suff(b), alpha, raw=(a, b), higher_is_better=better)
    # Revenue per visitor, from raw LCG data.
    for name, (nc, rc, sc, seedc), (nt, rt, st, seedt), alpha in [
        ("revenue: same rate, higher order value", (3000, 0.05, 40.0, 1), (3000, 0.05, 55.0, 2), 0.1),
        ("revenue: noisy, no effect", (1200, 0.1, 25.0, 3), (1300, 0.1, 25.0, 4), 0.1),
        ("revenue: strong lift", (10000, 0.04, 30.0, 5), (10000, 0.06, 30.0, 6), 0.05),
    ]:
        a, b = revenue(nc, rc, sc, seedc), revenue(nt, rt, st, seedt)
        add(name, suff(a), suff(b), alpha, raw=(a, b))
    return cases


# --------------------------------------------------------------------------------------------
# Sequential test on its own


def sequential():
    cases = []
    for estimate, se, n, alpha, n_star in [
        (0.05, 0.02, 10000, 0.1, 5000),
        (0.05, 0.02, 10000, 0.05, 5000),
        (-0.12, 0.04, 2000, 0.1, 5000),
        (0.3, 0.1, 500, 0.1, 5000),
        (0.01, 0.05, 50000, 0.1, 5000),
        (0.0, 0.03, 8000, 0.1, 5000),
        (0.2, 0.05, 100000, 0.1, 20000),
        (0.7073170731707317, 0.3787943616681428, 6868, 0.05, 5000),
    ]:
        ref = sequential_reference(estimate, se, n, alpha, n_star)
        cases.append({"estimate": estimate, "se": se, "n": n, "alpha": alpha, "nStar": n_star, **ref})
    return cases


# --------------------------------------------------------------------------------------------
# Multiple testing


def corrections():
    cases = []
    for name, ps in [
        ("issue example", [0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138]),
        ("with nulls", [0.01, None, 0.04, 0.03, None, 0.2]),
        ("all nulls", [None, None]),
        ("empty", []),
        ("single", [0.03]),
        ("ties and extremes", [0.0, 1.0, 0.05, 0.05, 0.05, 0.5]),
        ("many small", [0.001, 0.002, 0.003, 0.004, 0.005, 0.04, 0.045, 0.3, 0.7, 0.99]),
    ]:
        present = [p for p in ps if p is not None]
        out = {}
        for method, key in [("fdr_bh", "bh"), ("holm", "holm")]:
            adjusted = list(multipletests(present, method=method)[1]) if present else []
            it = iter(adjusted)
            out[key] = [None if p is None else float(next(it)) for p in ps]
        cases.append({"name": name, "pValues": ps, **out})
    return cases


# --------------------------------------------------------------------------------------------
# Sample-ratio mismatch


def srm():
    cases = []
    for name, observed, weights in [
        ("50/50, 1000 vs 1200", [1000, 1200], [1, 1]),
        ("50/50, 1000 vs 1010", [1000, 1010], [1, 1]),
        ("50/50 in basis points", [5000, 5210], [5000, 5000]),
        ("three arms 50/25/25", [5000, 2500, 2600], [5000, 2500, 2500]),
        ("three arms, clear mismatch", [5000, 2500, 2000], [2, 1, 1]),
        ("zero-weight arm excluded", [1000, 1010, 400], [1, 1, 0]),
        ("too few visitors in one arm", [1000, 7], [1, 1]),
        ("exactly 8 per arm", [8, 8], [1, 1]),
        ("one allocated arm", [500, 30], [1, 0]),
    ]:
        kept = [(o, w) for o, w in zip(observed, weights) if w > 0]
        checked = len(kept) >= 2 and all(o >= 8 for o, _ in kept)
        case = {"name": name, "observed": observed, "weights": weights, "df": max(0, len(kept) - 1)}
        if checked:
            total = sum(o for o, _ in kept)
            wsum = sum(w for _, w in kept)
            res = stats.chisquare([o for o, _ in kept], [w / wsum * total for _, w in kept])
            case.update(
                checked=True,
                chiSquare=float(res.statistic),
                pValue=float(res.pvalue),
                flagged=bool(res.pvalue < 0.001),
            )
        else:
            case.update(checked=False, chiSquare=None, pValue=None, flagged=False)
        cases.append(case)
    return cases


# --------------------------------------------------------------------------------------------
# Sample size


def sample_size():
    cases = []
    for name, baseline, mde, alpha, power, arms in [
        ("conversion 10 %, 5 % lift", suff(conversions(1000, 100)), 0.05, 0.1, 0.8, 2),
        ("conversion 3 %, 10 % lift, 95 %", suff(conversions(4000, 120)), 0.1, 0.05, 0.8, 2),
        ("conversion 10 %, 5 % lift, 4 arms", suff(conversions(1000, 100)), 0.05, 0.1, 0.8, 4),
        ("revenue, 5 % lift, power 0.9", suff(revenue(3000, 0.05, 40.0, 1)), 0.05, 0.1, 0.9, 2),
        ("conversion 50 %, 20 % lift", suff(conversions(500, 250)), 0.2, 0.1, 0.8, 3),
    ]:
        _, mu, var = summary(baseline)
        a = alpha / (arms - 1)
        z = stats.norm.ppf(1 - a / 2) + stats.norm.ppf(power)
        delta = mde * mu
        raw = float(z * z * 2 * var / delta**2)
        if abs(raw - round(raw)) < 1e-6:
            raise AssertionError(f"{name}: {raw} too close to an integer for a stable ceil")
        # statsmodels solves the exact two-sided power equation (includes the far tail).
        sm = NormalIndPower().solve_power(
            effect_size=delta / math.sqrt(var), alpha=a, power=power, ratio=1.0, alternative="two-sided"
        )
        close(raw, float(sm), 1e-3, f"sample size {name}")
        cases.append(
            {
                "name": name,
                "baseline": baseline,
                "mde": mde,
                "alpha": alpha,
                "power": power,
                "arms": arms,
                "raw": raw,
                "visitors": math.ceil(raw),
            }
        )
    return cases


def main():
    fixture = {
        "generatedBy": "scripts/stats-reference.py",
        "versions": {"scipy": scipy.__version__, "statsmodels": statsmodels.__version__, "mpmath": mp.__version__},
        "distributions": distributions(),
        "welch": welch_and_compare(),
        "sequential": sequential(),
        "corrections": corrections(),
        "srm": srm(),
        "sampleSize": sample_size(),
    }
    text = json.dumps(fixture, indent=2, allow_nan=False) + "\n"
    prettier = os.path.join(ROOT, "node_modules", ".bin", "prettier")
    if os.path.exists(prettier) and shutil.which("node"):
        text = subprocess.run(
            [prettier, "--stdin-filepath", OUTPUT], input=text, capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    if "--stdout" in sys.argv[1:]:
        sys.stdout.write(text)
    else:
        with open(OUTPUT, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(OUTPUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
