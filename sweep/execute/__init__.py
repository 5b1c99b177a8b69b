"""Execution on Ray: connect, schedule, submit, lock, progress, status."""
