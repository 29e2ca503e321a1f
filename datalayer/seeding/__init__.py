"""Environment-aware seed data: ``seeds/<environment>.json`` loaded, applied and cleared by natural key."""

from datalayer.seeding.loader import ENVIRONMENTS, SEEDS_DIR, SeedBlock, SeedSet, load_seed_set
from datalayer.seeding.runner import SEED_ACTOR, SeedOutcome, SeedReport, clear, seed
from datalayer.seeding.values import SeedError

__all__ = [
    "ENVIRONMENTS", "SEEDS_DIR", "SEED_ACTOR", "SeedBlock", "SeedError", "SeedOutcome", "SeedReport", "SeedSet",
    "clear", "load_seed_set", "seed",
]
