"""Robustness suite (issue 10): bad input, faults, secrets, injection, interrupts.

A package, so its modules (``robustness.cases``) never clash with the ``conftest`` and
test modules of tests/, which pytest imports by their bare names.
"""
