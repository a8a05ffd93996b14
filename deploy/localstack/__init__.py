"""A local production stack on loopback: Debian's nginx in front of several `manage.py serve`
processes on PostgreSQL and Redis. `make stack` runs it for people (`python -m
deploy.localstack`); tests/stack and bench/load_bench.py start the same `Stack`."""
from .stack import Stack, StackError

__all__ = ["Stack", "StackError"]
