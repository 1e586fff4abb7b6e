"""How fast the constraint engine masks a catalog and repairs a ranking (no database, no Django).

    python bench/constraints.py [--items 100000] [--repeats 200] [--seed 0]

Builds a synthetic catalog of ITEMS items (25 topics, 4 of them sensitive, 1–3 topics per item,
12 sources, sensitivities and ratings mostly 0) and a policy with every rule kind, then times
with perf_counter, after a warm-up, REPEATS calls each of `allowed_mask(context)` over the whole
catalog and `repair(context, ranked, 10)`, where `ranked` is a fresh argsort of random scores
for every call (the argsort is not timed). Calls alternate an adult and a minor context.
Every repaired slate is checked to be complete and to break no hard rule (not timed).
Prints one JSON line last: {"items", "mask_p50_ms", "mask_p99_ms", "repair_k10_p50_ms",
"repair_k10_p99_ms"}.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import emit
from governance.engine.core import (
    RATINGS,
    BlockedItems,
    CatalogArrays,
    CompiledPolicy,
    EngineContext,
    ForbiddenTopics,
    LowSourceDiversity,
    MaxAudienceRating,
    MaxItemsPerTopic,
    MaxSensitivity,
    MinDistinctSources,
    RecentTopicRepeat,
    SensitiveTopicPenalty,
)

N_TOPICS = 25
SENSITIVE = (21, 22, 23, 24)  # the last four topics
N_SOURCES = 12
MAX_TOPICS_PER_ITEM = 3
K = 10
WARM_UP = 20


def synthetic_catalog(n: int, rng: np.random.Generator) -> CatalogArrays:
    """Topic and source sizes are uneven; most items are sensitivity 0 and rated for all."""
    popularity = rng.dirichlet(np.full(N_TOPICS, 2.0))
    # Gumbel top-k: distinct topics per item, drawn by popularity without replacement.
    keys = np.log(popularity) + rng.gumbel(size=(n, N_TOPICS))
    ranked_topics = np.argsort(-keys, axis=1)[:, :MAX_TOPICS_PER_ITEM]
    counts = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15])
    topics = np.where(np.arange(MAX_TOPICS_PER_ITEM) < counts[:, None], ranked_topics, -1)

    topic_sensitive = np.isin(np.arange(N_TOPICS), SENSITIVE)
    has_sensitive = (topic_sensitive[topics] & (topics >= 0)).any(axis=1)
    sensitivity = rng.choice(4, size=n, p=[0.75, 0.15, 0.07, 0.03]) + has_sensitive
    sensitivity = np.minimum(sensitivity, 3)
    # Harsher content is rated for older audiences.
    rating = np.maximum(rng.choice(3, size=n, p=[0.75, 0.17, 0.08]), np.maximum(sensitivity - 1, 0))

    source_share = 1.0 / np.arange(1, N_SOURCES + 1)
    source = rng.choice(N_SOURCES, size=n, p=source_share / source_share.sum())
    return CatalogArrays.build(
        item_keys=np.arange(1, n + 1),
        topics=topics,
        source=source,
        sensitivity=sensitivity,
        rating=rating,
        topic_names=tuple(f"topic-{t:02d}" for t in range(N_TOPICS)),
        topic_sensitive=topic_sensitive,
    )


def every_rule(catalog: CatalogArrays, rng: np.random.Generator) -> tuple[list, list]:
    """A policy with every rule kind: (hard rules, soft rules)."""
    # 1,000 takedowns at the default size; a tenth of the catalog at most for small runs.
    takedowns = rng.choice(catalog.item_keys, size=min(1000, catalog.n_items // 10), replace=False)
    hard = [
        ForbiddenTopics("minor-forbidden-topics", SENSITIVE, ("minor",)),
        MaxSensitivity("adult-max-sensitivity", "adult", 2),
        MaxSensitivity("minor-max-sensitivity", "minor", 1),
        MaxAudienceRating("minor-max-rating", "minor", RATINGS.index("teen")),
        BlockedItems("takedowns", tuple(takedowns.tolist())),
        MinDistinctSources("three-sources", 3),
        MaxItemsPerTopic("two-per-topic", 2),
    ]
    soft = [
        SensitiveTopicPenalty("sensitive-topics", 0.5),
        RecentTopicRepeat("recent-repeat", 0.3, 5),
        LowSourceDiversity("source-diversity", 1.0, 5),
    ]
    return hard, soft


def time_masks(policy: CompiledPolicy, contexts: list[EngineContext], repeats: int) -> np.ndarray:
    samples = []
    for i in range(WARM_UP + repeats):
        started = time.perf_counter()
        policy.allowed_mask(contexts[i % 2])
        elapsed = (time.perf_counter() - started) * 1000
        if i >= WARM_UP:
            samples.append(elapsed)
    return np.array(samples)


def time_repairs(
    policy: CompiledPolicy, contexts: list[EngineContext], repeats: int, rng: np.random.Generator
) -> np.ndarray:
    n = policy.catalog.n_items
    samples = []
    for i in range(WARM_UP + repeats):
        context = contexts[i % 2]
        ranked = np.argsort(-rng.random(n))  # a fresh ranking, not timed
        started = time.perf_counter()
        repair = policy.repair(context, ranked, K)
        elapsed = (time.perf_counter() - started) * 1000
        if not repair.complete or policy.violations(context, repair.slate):
            raise SystemExit(f"repair broke its contract: {repair}")
        if i >= WARM_UP:
            samples.append(elapsed)
    return np.array(samples)


COMPILE_REPEATS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    catalog = synthetic_catalog(args.items, rng)
    hard, soft = every_rule(catalog, rng)
    # Compiling computes the per-audience item tables, vectorized over the catalog; a
    # policy is compiled once per version and catalog change, then every mask is a lookup.
    compiles = []
    for _ in range(COMPILE_REPEATS):
        started = time.perf_counter()
        policy = CompiledPolicy(catalog, hard, soft)
        compiles.append((time.perf_counter() - started) * 1000)
    compile_ms = float(np.percentile(compiles, 50))
    contexts = [
        EngineContext(audience, rng.integers(0, N_TOPICS, size=20))
        for audience in ("adult", "minor")
    ]
    allowed = {c.audience: float(policy.allowed_mask(c).mean()) for c in contexts}

    masks = time_masks(policy, contexts, args.repeats)
    repairs = time_repairs(policy, contexts, args.repeats, rng)

    print(
        f"compiled {args.items:,} items in {compile_ms:.1f} ms (the per-audience tables); "
        f"allowed: adult {allowed['adult']:.1%}, minor {allowed['minor']:.1%}",
        file=sys.stderr,
    )
    print(
        f"allowed_mask p50 {np.percentile(masks, 50):.4f} ms; "
        f"repair k={K} p50 {np.percentile(repairs, 50):.4f} ms over {args.repeats} runs each",
        file=sys.stderr,
    )
    emit(
        {
            "items": args.items,
            "mask_p50_ms": round(float(np.percentile(masks, 50)), 4),
            "mask_p99_ms": round(float(np.percentile(masks, 99)), 4),
            "repair_k10_p50_ms": round(float(np.percentile(repairs, 50)), 4),
            "repair_k10_p99_ms": round(float(np.percentile(repairs, 99)), 4),
            "compile_p50_ms": round(compile_ms, 2),
        }
    )


if __name__ == "__main__":
    main()
