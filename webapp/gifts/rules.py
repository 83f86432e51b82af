"""Work in progress."""


def apply_rules_task(progress, **params):
    """Placeholder until the rules engine lands."""
    raise NotImplementedError
