"""Reanalysis of published group comparisons from their summary statistics (mean, SD, n).

The reference paper's Table 2 gives VAS pain scores (mean +- SD) of 41 high-activity and 55
low-activity patients before and 9 h and 16 h after implantation, with between-group p-values.
From these alone we can recompute two-sample t-tests (scipy.stats.ttest_ind_from_stats):
Welch's (unequal variances) and Student's (pooled variance), and the effect size (Cohen's d
with the pooled SD, and Hedges' g, its small-sample correction; Hedges & Olkin 1985). A
within-group (before/after) paired test needs the correlation of the two measurements, which
the paper does not give: we report the p-value at r = 0, which is the largest for any r >= 0
(a positive correlation shrinks the SD of the differences).
"""

from __future__ import annotations

import math

from scipy import stats


def between_groups(time: str, mean: tuple[float, float], sd: tuple[float, float],
                   n: tuple[int, int], reported_p: str = "") -> dict:
    """Welch and Student two-sided t-tests and effect sizes of two groups at one time point."""
    (m1, m2), (s1, s2), (n1, n2) = mean, sd, n
    welch = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
    student = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=True)
    se1, se2 = s1**2 / n1, s2**2 / n2
    welch_df = (se1 + se2) ** 2 / (se1**2 / (n1 - 1) + se2**2 / (n2 - 1))
    pooled = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    d = (m1 - m2) / pooled
    correction = 1.0 - 3.0 / (4.0 * (n1 + n2) - 9.0)  # Hedges & Olkin (1985), eq. 5.10
    return {
        "time": time, "mean": list(mean), "sd": list(sd), "n": list(n),
        "difference": m1 - m2,
        "welch_t": float(welch.statistic), "welch_df": welch_df, "welch_p": float(welch.pvalue),
        "student_t": float(student.statistic), "student_df": n1 + n2 - 2,
        "student_p": float(student.pvalue),
        "cohens_d": d, "hedges_g": d * correction, "reported_p": reported_p,
    }


def within_group_bound(mean: tuple[float, float], sd: tuple[float, float], n: int) -> dict:
    """Before/after change in one group: the paired t statistic and two-sided p-value at
    correlation r = 0 (the largest p for any r >= 0; the paper gives no correlation)."""
    se = math.sqrt((sd[0] ** 2 + sd[1] ** 2) / n)
    t = (mean[0] - mean[1]) / se
    return {"change": mean[0] - mean[1], "t_at_r0": t, "df": n - 1,
            "p_at_r0": float(2.0 * stats.t.sf(abs(t), n - 1))}


def clinical_markdown(groups: tuple[str, str], n: tuple[int, int], rows: list[dict],
                      within: dict[str, dict[str, dict]]) -> str:
    """The between-group table (means, both tests, effect size, the paper's p-value) and the
    within-group changes from the first time point at r = 0."""
    a, b = groups
    lines = [f"| time | {a} (n = {n[0]}) | {b} (n = {n[1]}) | difference | Welch t (df), p "
             "| Student t (df), p | Hedges' g | reported p |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['time']} | {r['mean'][0]:.2f} +- {r['sd'][0]:.2f} | {r['mean'][1]:.2f} +- "
            f"{r['sd'][1]:.2f} | {r['difference']:+.2f} | {r['welch_t']:.2f} "
            f"({r['welch_df']:.1f}), {r['welch_p']:.3g} | {r['student_t']:.2f} "
            f"({r['student_df']}), {r['student_p']:.3g} | {r['hedges_g']:.2f} "
            f"| {r['reported_p']} |")
    lines += ["", "Within each group, the change from the first time point (paired t at "
              "correlation r = 0, the largest p for any r >= 0):", "",
              "| group | time | change | t (df) | p at r = 0 |", "|---|---|---|---|---|"]
    for group, times in within.items():
        for time, w in times.items():
            lines.append(f"| {group} | {time} | {w['change']:+.2f} | {w['t_at_r0']:.2f} "
                         f"({w['df']}) | {w['p_at_r0']:.2g} |")
    return "\n".join(lines) + "\n"
