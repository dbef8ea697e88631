import os

from hypothesis import HealthCheck, settings

# Seeded, reproducible property tests; TFNODE_SLOW=1 runs many more examples.
settings.register_profile(
    "ci", max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("slow", max_examples=2000, derandomize=False, deadline=None)
settings.load_profile("slow" if os.environ.get("TFNODE_SLOW") else "ci")
