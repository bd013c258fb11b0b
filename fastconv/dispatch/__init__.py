"""Method registry, selector and plans."""

from .registry import Method, methods_for, register, unregister
from .selector import Plan, clear_plan_cache, select, valid_methods

__all__ = ["Method", "Plan", "clear_plan_cache", "methods_for", "register", "select", "unregister", "valid_methods"]
