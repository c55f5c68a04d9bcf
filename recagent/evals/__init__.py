"""Offline evaluation: pure metrics, protocols, the harness and its reports."""
