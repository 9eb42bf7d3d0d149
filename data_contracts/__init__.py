"""Declarative data contracts (ODCS v3.1 YAML) for the CRM extract, and their compilation to quality gates."""
