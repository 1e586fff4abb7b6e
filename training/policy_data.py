"""The labeled and logged stores as the policy's training data.

- Demonstrations: each step is the state the expert saw, the candidates shown, the chosen
  slate (best first) and the rejected candidates with their reasons, weighted by the
  reviewer's reliability and the channel (as for the reward model). The newest
  HELDOUT_SHARE of demonstrations (whole trajectories, so no step of a held-out
  trajectory trains) are held out for hit@k and NDCG.
- Logged interactions: the newest LOGGED_ROWS rows teach the critic what users did.
- Replay contexts: UserContexts sampled at random, where the policy is improved against
  the reward model and the soft-rule budget is measured.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from annotation.quality_selectors import reviewer_reliability
from catalog.models import LoggedInteraction, UserContext
from governance.engine.core import EngineContext
from training.datasets import (
    CHANNEL_WEIGHTS,
    FeatureSpace,
    context_states,
    demonstration_step_rows,
)
from training.ml.features import Contexts
from training.ml.policy_training import REJECT_REASONS, DemonstrationSteps, LoggedBatch

HELDOUT_SHARE = 0.1
LOGGED_ROWS = 50_000
REPLAY_CONTEXTS = 2_000


@dataclass(frozen=True)
class Demonstrations:
    """Steps as arrays, with the states and segments evaluation needs."""

    steps: DemonstrationSteps
    states: list[dict]
    segments: np.ndarray  # str[S]

    def __len__(self) -> int:
        return len(self.states)


@dataclass(frozen=True)
class PolicyData:
    train: Demonstrations
    heldout: Demonstrations
    logged: LoggedBatch | None
    logged_engine: list[EngineContext]
    replay_states: list[dict]
    dataset_hash: str
    label_counts: dict
    guideline_versions: list[int]


def policy_data(space: FeatureSpace, *, k: int, seed: int) -> PolicyData:
    rows = _step_rows(space)
    reliability = reviewer_reliability({row["reviewer_id"] for row in rows})
    newest = _heldout_demonstrations(rows)
    train = [row for row in rows if row["demonstration_id"] not in newest]
    heldout = [row for row in rows if row["demonstration_id"] in newest]
    logged, logged_states = _logged(space, k=k)
    return PolicyData(
        train=_demonstrations(space, train, reliability, k=k),
        heldout=_demonstrations(space, heldout, reliability, k=k),
        logged=logged,
        logged_engine=[space.engine_context(state) for state in logged_states],
        replay_states=_replay_states(seed),
        dataset_hash=_snapshot_hash(space, rows, logged),
        guideline_versions=sorted({row["guideline_version_id"] for row in rows} - {None}),
        label_counts={
            "demonstration_steps": len(rows),
            "demonstrations": len({row["demonstration_id"] for row in rows}),
            "heldout_steps": len(heldout),
            "logged_interactions": len(logged) if logged is not None else 0,
            "by_channel": _count(row["channel"] for row in rows),
            "by_guideline_version": _count(
                str(row["guideline_version_id"] or "none") for row in rows
            ),
        },
    )


def _step_rows(space: FeatureSpace) -> list[dict]:
    rows = demonstration_step_rows()
    # A step whose chosen items all left the catalog teaches nothing.
    return [row for row in rows if any(pk in space.position_of_pk for pk in row["chosen"])]


def _heldout_demonstrations(rows: list[dict]) -> set[int]:
    created = {row["demonstration_id"]: row["demonstration_created_at"] for row in rows}
    by_age = sorted(created, key=lambda pk: (created[pk], pk))
    return set(by_age[len(by_age) - int(len(by_age) * HELDOUT_SHARE) :])


def _demonstrations(space: FeatureSpace, rows: list[dict], reliability, *, k: int):
    states = [
        {**row["state"], "segment": row["segment"], "audience": row["audience"]} for row in rows
    ]
    reason_index = {reason: i for i, reason in enumerate(REJECT_REASONS)}
    rejected = [[r for r in row["rejected"] or [] if r.get("item") in space.position_of_pk]
                for row in rows]  # fmt: skip
    steps = DemonstrationSteps(
        contexts=space.contexts(states) if rows else _no_contexts(space),
        chosen=_positions(space, [row["chosen"][:k] for row in rows]),
        candidates=_positions(space, [row["shown"] for row in rows]),
        rejected=_positions(space, [[r["item"] for r in part] for part in rejected]),
        reasons=_padded(
            [
                [reason_index.get(r.get("reason"), reason_index["other"]) for r in part]
                for part in rejected
            ]
        ),  # fmt: skip
        weights=np.array(
            [
                CHANNEL_WEIGHTS.get(row["channel"], 1.0) * reliability[row["reviewer_id"]]
                for row in rows
            ],
            dtype=np.float32,
        ),  # fmt: skip
    )
    segments = np.array([row["segment"] for row in rows], dtype=object)
    return Demonstrations(steps=steps, states=states, segments=segments)


def _positions(space: FeatureSpace, lists: list[list[int]]) -> np.ndarray:
    """int64[B, widest] catalog positions of item pks, -1 padded (unknown items dropped)."""
    return _padded([[space.position_of_pk[pk] for pk in pks if pk in space.position_of_pk]
                    for pks in lists])  # fmt: skip


def _padded(lists: list[list[int]]) -> np.ndarray:
    table = np.full((len(lists), max([1, *map(len, lists)])), -1, dtype=np.int64)
    for row, values in enumerate(lists):
        table[row, : len(values)] = values
    return table


def _no_contexts(space: FeatureSpace) -> Contexts:
    return space.contexts([])


def _logged(space: FeatureSpace, *, k: int) -> tuple[LoggedBatch | None, list[dict]]:
    rows = list(
        LoggedInteraction.objects.order_by("-logged_at", "-pk").values(
            "context_id", "slate", "clicks", "reward"
        )[:LOGGED_ROWS]
    )
    contexts = context_states({row["context_id"] for row in rows})
    rows = [
        row for row in rows
        if row["context_id"] in contexts and all(pk in space.position_of_pk for pk in row["slate"])
    ]  # fmt: skip
    if not rows:
        return None, []
    states = [contexts[row["context_id"]] for row in rows]
    slates = space.slates([row["slate"][:k] for row in rows])[:, :k]
    clicks = np.zeros(slates.shape, dtype=bool)
    for i, row in enumerate(rows):
        positions = [p for p in row["clicks"] or [] if 0 <= p < k]
        clicks[i, positions] = True
    batch = LoggedBatch(
        contexts=space.contexts(states), slates=slates,
        rewards=np.array([row["reward"] for row in rows], dtype=np.float64), clicks=clicks,
    )  # fmt: skip
    return batch, states


def _replay_states(seed: int) -> list[dict]:
    ids = list(UserContext.objects.values_list("pk", flat=True))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(REPLAY_CONTEXTS, len(ids)), replace=False) if ids else []
    return list(
        UserContext.objects.filter(pk__in=[int(pk) for pk in chosen]).values(
            "segment", "audience", "situation", "history"
        )
    )


def _snapshot_hash(space: FeatureSpace, rows: list[dict], logged: LoggedBatch | None) -> str:
    digest = hashlib.sha256(repr(space.vocabulary.to_dict()).encode())
    for row in rows:
        digest.update(f"s{row['id']}@{row['demonstration_updated_at'].isoformat()};".encode())
    digest.update(f"logged:{len(logged) if logged is not None else 0}".encode())
    return digest.hexdigest()


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
