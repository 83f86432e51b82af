"""Backup and restore: ``flask backup`` writes the database, the active model artefacts and the
covers into one verified archive; ``flask restore`` puts them back (docs/deploy.md)."""

from webapp.backup.cli import backup_command, restore_command

__all__ = ["backup_command", "restore_command"]
