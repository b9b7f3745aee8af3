"""Fixtures for the whole suite. Each real component has its own fixture module."""

pytest_plugins = [
    "tests.fixtures.camsim",
    "tests.fixtures.mosquitto",
    "tests.fixtures.seaweedfs",
    "tests.fixtures.postgres",
]
