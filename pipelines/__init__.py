"""Prefect flows, configuration and the crmscore CLI. Nothing imports this package."""
