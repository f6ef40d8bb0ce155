"""Shared test settings: no per-example deadline for hypothesis (the CI box is shared and busy;
speed is measured in benchmarks/, never in unit tests)."""

from hypothesis import settings

settings.register_profile("shared-box", deadline=None)
settings.load_profile("shared-box")
