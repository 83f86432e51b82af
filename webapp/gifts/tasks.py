"""The gifts workbench's background tasks, registered by ``create_app``."""

from __future__ import annotations


def register_gifts_tasks() -> None:
    """Register the import, apply-rules and batch-suggestion tasks with the job runner."""
    from webapp.gifts.imports import import_task
    from webapp.gifts.rules import apply_rules_task
    from webapp.gifts.suggest import suggest_task
    from webapp.jobs.runner import register_task

    register_task("gifts-import", import_task)
    register_task("gifts-apply-rules", apply_rules_task)
    register_task("gifts-suggest", suggest_task)
