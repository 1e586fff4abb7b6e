import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.demo import seed_expert_demonstrations, seed_labeling_queue
from catalog.demo import seed_demo_world
from catalog.models import Item
from governance.demo import seed_governance
from training.ml.simulator import SimConfig, Simulator


class Command(BaseCommand):
    help = "Build the demo world with the simulator and import it (items, contexts, interactions)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--items", type=int, default=2000)
        parser.add_argument("--users", type=int, default=500)
        parser.add_argument("--interactions", type=int, default=50000)
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing (and succeed) when the catalog already has items",
        )

    def handle(self, *args, **options) -> None:
        for name in ("items", "users"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        if options["interactions"] < 0:
            raise CommandError("--interactions must not be negative")
        if Item.objects.exists():
            if options["if_empty"]:
                self.stdout.write("The catalog already has items: the demo world is loaded.")
                return
            raise CommandError(
                "The catalog already has items; seed_demo fills an empty catalog "
                "(pass --if-empty to skip quietly)."
            )
        sim = Simulator(
            SimConfig(n_items=options["items"], n_users=options["users"]), seed=options["seed"]
        )
        results = seed_demo_world(
            sim=sim,
            interactions=options["interactions"],
            rng=np.random.default_rng([options["seed"], 2]),
        )
        for part, result in results.items():
            self.stdout.write(f"{part}: {result.rows:,} rows in {result.seconds:.1f}s")
        seed_governance()
        self.stdout.write("governance: the platform policy and the guidelines are published")
        tasks = seed_labeling_queue(sim=sim, rng=np.random.default_rng([options["seed"], 3]))
        self.stdout.write(f"labeling: {tasks} tasks are waiting in the queue")
        shown = seed_expert_demonstrations(sim=sim, rng=np.random.default_rng([options["seed"], 4]))
        self.stdout.write(f"demonstrations: {shown} by a simulated expert, to train a policy on")
        self.stdout.write(self.style.SUCCESS("The demo world is loaded."))
