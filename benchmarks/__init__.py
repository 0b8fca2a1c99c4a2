"""Benchmarks and the seeded synthetic-release generator they share with the tests."""
