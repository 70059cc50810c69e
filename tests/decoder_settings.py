"""The hypothesis settings of the decoder property tests: repeatable and thorough.

Applied per test (``@DECODERS``), so no global profile changes other modules' tests.
"""

from hypothesis import HealthCheck, settings

DECODERS = settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
