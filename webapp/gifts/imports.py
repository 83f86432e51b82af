"""Work in progress."""


def import_task(progress, **params):
    """Placeholder until the importer lands."""
    raise NotImplementedError
