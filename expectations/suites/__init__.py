"""Expectation suites, one module per suite (`<layer>__<dataset>.py`), each exposing SUITE, target(ctx) and
build_suite(ctx). Shared pieces: _base.py (context, policy, builder), _contract.py (raw suites from the contract).
"""
