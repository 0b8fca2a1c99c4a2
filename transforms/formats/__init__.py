"""Pure format logic: release parsing, bitmap decoding and every export format.

Nothing in this package imports apache_beam (tests/unit/test_layering.py enforces it), so
each function can be tested and reused without a pipeline.
"""
