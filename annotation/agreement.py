"""Agreement between reviewers, computed from running tallies (pure functions).

Krippendorff's alpha, nominal (Krippendorff 2011, "Computing Krippendorff's
Alpha-Reliability"): each task with m ≥ 2 labels contributes to the coincidence matrix
    o_ck += (number of ordered pairs of labels (c, k) from different reviewers) / (m − 1),
and with n_c = Σ_k o_ck, n = Σ_c n_c,
    α = 1 − D_o / D_e,   D_o = Σ_{c≠k} o_ck / n,   D_e = Σ_{c≠k} n_c n_k / (n (n − 1)).
Answers are nominal categories: A, B, tie and cannot tell each its own.

Cohen's kappa for two reviewers: κ = (p_o − p_e) / (1 − p_e) from their confusion counts.

The agreement ceiling (for a Bradley–Terry model of the labels): with observed pairwise
agreement A between reviewers on the same pair, no model can beat the accuracy of the
Bayes predictor, which lies between A and (1 + √(2A − 1)) / 2.
"""

import math
from collections import Counter
from collections.abc import Iterable

Pair = tuple[str, str]


def key(pair: Pair) -> str:
    """Coincidence matrices are stored as JSON objects keyed "c|k"."""
    return f"{pair[0]}|{pair[1]}"


def unkey(text: str) -> Pair:
    first, second = text.split("|", 1)
    return first, second


def unit_coincidences(values: list[str]) -> dict[Pair, float]:
    """One task's contribution: ordered pairs of different reviewers' answers / (m − 1)."""
    m = len(values)
    if m < 2:
        return {}
    counts = Counter(values)
    contribution: dict[Pair, float] = {}
    for c, n_c in counts.items():
        for k, n_k in counts.items():
            pairs = n_c * (n_c - 1) if c == k else n_c * n_k
            if pairs:
                contribution[(c, k)] = pairs / (m - 1)
    return contribution


def alpha_nominal(coincidences: dict[Pair, float]) -> float | None:
    """Krippendorff's alpha from a coincidence matrix; None when it is undefined (fewer
    than two pairable values, or every value the same category)."""
    margins: Counter = Counter()
    for (c, _k), weight in coincidences.items():
        margins[c] += weight
    n = sum(margins.values())
    if n <= 1:
        return None
    observed = sum(w for (c, k), w in coincidences.items() if c != k) / n
    expected = sum(margins[c] * margins[k] for c in margins for k in margins if c != k) / (
        n * (n - 1)
    )
    if expected == 0:
        return None
    return 1.0 - observed / expected


def add(tally: dict[Pair, float], change: dict[Pair, float], sign: int = 1) -> None:
    for pair, weight in change.items():
        tally[pair] = tally.get(pair, 0.0) + sign * weight
        if abs(tally[pair]) < 1e-12:
            del tally[pair]


def cohens_kappa(confusion: dict[Pair, int]) -> float | None:
    """κ from counts of (first reviewer's answer, second's); None when undefined."""
    total = sum(confusion.values())
    if total == 0:
        return None
    first, second = Counter(), Counter()
    for (a, b), count in confusion.items():
        first[a] += count
        second[b] += count
    observed = sum(count for (a, b), count in confusion.items() if a == b) / total
    expected = sum(first[c] * second[c] for c in first) / total**2
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def agreeing_pairs(values: list[str]) -> tuple[int, int]:
    """(agreeing, all) unordered pairs of answers on one task."""
    m = len(values)
    total = m * (m - 1) // 2
    agreeing = sum(n * (n - 1) // 2 for n in Counter(values).values())
    return agreeing, total


def ceiling(observed_agreement: float) -> tuple[float, float] | None:
    """The bounds on any model's accuracy that the reviewers' agreement A implies:
    [A, (1 + √(2A − 1)) / 2]; None below A = 0.5, where the Bradley–Terry reading fails."""
    if observed_agreement < 0.5:
        return None
    return observed_agreement, (1 + math.sqrt(2 * observed_agreement - 1)) / 2


def majority(values: Iterable[str]) -> tuple[str | None, float]:
    """The modal answer and its share; None when two answers tie for the mode."""
    counts = Counter(values).most_common()
    if not counts:
        return None, 0.0
    total = sum(n for _, n in counts)
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None, counts[0][1] / total
    return counts[0][0], counts[0][1] / total
