"""Benchmarks of the certification core (``mmcert-ros bench``): figures and ratios, no asserts."""
