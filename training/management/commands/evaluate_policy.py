"""Off-policy evaluation of a registered policy on a chosen slice of logged interactions.

    python manage.py evaluate_policy [--model-version N] [--logging-policy NAME]
        [--since 2026-11-01] [--until 2026-12-01] [--segment NAME] [--limit 20000]
        [--bootstrap 1000] [--seed 0] [--json]

Without --model-version it evaluates the promoted policy. Prints IPS, SNIPS, DR and SNDR with
95% bootstrap intervals, the effective sample size of the importance weights and the
slice's mean logged reward (``training.logged_ope`` documents the estimators).
"""

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from training import registry
from training.datasets import VocabularyChanged, feature_space
from training.logged_ope import SliceError
from training.ml.artifacts import CheckpointError
from training.models import ModelKind, ModelVersion
from training.policy_evaluation import Evaluated, policy_ope
from training.policy_training import SLATE_SIZE, loaded_policy

ESTIMATORS = ("ips", "snips", "dr", "sndr", "dm")


class Command(BaseCommand):
    help = "Estimate a registered policy's value on a slice of the logged interactions."

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, help="policy version (default: promoted)")
        parser.add_argument("--logging-policy", help="only rows this logging policy showed")
        parser.add_argument("--since", help="only rows logged at or after (ISO date/time)")
        parser.add_argument("--until", help="only rows logged before (ISO date/time)")
        parser.add_argument("--segment", help="only contexts of this segment")
        parser.add_argument("--limit", type=int, default=20_000, help="newest rows at most")
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        since = _moment("--since", options["since"])
        until = _moment("--until", options["until"])
        version = _version(options["model_version"])
        try:
            policy = loaded_policy(version)
        except (VocabularyChanged, CheckpointError, OSError) as error:
            raise CommandError(f"--model-version {version.version}: {error}") from error
        evaluated = Evaluated(policy=policy, space=feature_space(), k=SLATE_SIZE)
        try:
            report = policy_ope(
                evaluated, seed=options["seed"], n_boot=options["bootstrap"],
                logging_policy=options["logging_policy"], segment=options["segment"],
                since=since, until=until, limit=options["limit"],
            )  # fmt: skip
        except SliceError as error:
            raise CommandError(str(error)) from error
        except ValueError as error:  # the estimators' checks name the array and row
            raise CommandError(f"the slice cannot be evaluated: {error}") from error
        report["policy_version"] = version.version
        if options["json"]:
            self.stdout.write(json.dumps(report, default=str))
            return
        self._print(version, report)

    def _print(self, version: ModelVersion, report: dict) -> None:
        self.stdout.write(
            f"Policy v{version.version} ({version.status}) on {report['rows']} logged rows "
            f"(ESS {report['ess']:.1f}, largest weight {report['max_weight']:.3g}, "
            f"logged mean reward {report['logged_mean_reward']:.4f})"
        )
        for name in ESTIMATORS:
            estimate = report[name]
            interval = (
                f"[{estimate['low']:.4f}, {estimate['high']:.4f}]" if "low" in estimate else ""
            )
            self.stdout.write(f"  {name.upper():6} {estimate['estimate']:.4f}  {interval}")


def _version(number: int | None) -> ModelVersion:
    if number is None:
        promoted = registry.promoted_version(ModelKind.POLICY)
        if promoted is None:
            raise CommandError("--model-version: no policy is promoted; name a version")
        return promoted
    try:
        return ModelVersion.objects.get(kind=ModelKind.POLICY, version=number)
    except ModelVersion.DoesNotExist as error:
        raise CommandError(f"--model-version {number}: no such policy version") from error


def _moment(flag: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"{flag} {value!r}: not an ISO date or date-time") from error
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
