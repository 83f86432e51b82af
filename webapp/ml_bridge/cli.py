"""``flask models ...``: list, train, activate and roll back models from the command line."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup

from webapp import jobs, registry
from webapp.ml_bridge import KINDS, activated, get_spec

models_cli = AppGroup("models", help="Model versions: list, train, activate, roll back.")

RETRAIN = "retrain"


def _kind(kind: str) -> str:
    try:
        get_spec(kind)
    except LookupError as error:
        raise click.BadParameter(str(error), param_hint="KIND") from error
    return kind


@models_cli.command("list")
def list_command() -> None:
    """Every kind with its versions, newest first; * marks the active one."""
    for kind in KINDS:
        click.echo(f"{kind}:")
        rows = registry.versions(kind)
        if not rows:
            click.echo("  (not trained yet)")
        for row in rows:
            mark = "*" if row.status == "active" else " "
            metrics = " ".join(f"{k}={v:.3f}" for k, v in row.metrics.items()
                               if isinstance(v, float))
            click.echo(f" {mark} {row.version}  {row.status:<9} {metrics}")


@models_cli.command("train")
@click.argument("kind")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Training option, e.g. --param model_type=linear --param degree=3.")
@click.option("--algorithm", help="The algorithm, where the kind offers several "
              "(dough: linear, polynomial, multi; default: the best on the hold-out).")
@click.option("--wait", is_flag=True, help="Wait for the job and print its progress.")
def train_command(kind: str, params: tuple[str, ...], algorithm: str | None, wait: bool) -> None:
    """Retrain KIND in the background (the same job as the Retrain button)."""
    kind = _kind(kind)
    options = dict(_split(param) for param in params)
    if algorithm:
        choices = get_spec(kind).algorithms
        if algorithm not in choices:
            raise click.BadParameter(f"{algorithm!r} is not one of {', '.join(choices)}",
                                     param_hint="--algorithm")
        options[get_spec(kind).algorithm_param] = algorithm
    try:
        job, created = jobs.enqueue(RETRAIN, {"kind": kind, "trained_by": "cli", **options},
                                    dedupe_key=f"{RETRAIN}:{kind}", created_by="cli",
                                    subject=kind)
    except jobs.QueueUnavailable as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{'Started' if created else 'Already running'}: job {job.id}")
    if wait or current_app.config["JOBS_BACKEND"] == "thread":
        # The thread backend runs inside this process: leaving now would abandon the job.
        _wait_for(job.id)


def _split(param: str) -> tuple[str, str]:
    key, sep, value = param.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{param!r} is not KEY=VALUE", param_hint="--param")
    return key, value


def _follow(job_id: str) -> jobs.Job:
    """Print a job's progress until it is done; return it."""
    last = None
    while True:
        job = jobs.get_job(job_id)
        line = f"  {job.progress:3d}% {job.message}"
        if line != last:
            click.echo(line)
            last = line
        if job.done:
            return job
        time.sleep(0.2)


def _wait_for(job_id: str) -> None:
    job = _follow(job_id)
    if job.status == "failed":
        raise click.ClickException(f"Job failed: {job.error}")
    click.echo(f"Version {job.result['version']}: "
               f"{'activated' if job.result['activated'] else 'kept as candidate'} "
               f"({job.result['reason']})")


@models_cli.command("activate")
@click.argument("kind")
@click.argument("version")
def activate_command(kind: str, version: str) -> None:
    """Make VERSION of KIND the active one."""
    try:
        registry.activate(_kind(kind), version, "cli", reason="activated by hand")
    except registry.RegistryError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{kind} {version} is now active.")
    _after_activation(kind, version)


@models_cli.command("rollback")
@click.argument("kind")
def rollback_command(kind: str) -> None:
    """Re-activate the previously active version of KIND."""
    try:
        row = registry.rollback(_kind(kind), "cli")
    except registry.RegistryError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{kind} rolled back to {row.version}.")
    _after_activation(kind, row.version)


def _after_activation(kind: str, version: str) -> None:
    """Run the kind's follow-up (e.g. batch suggestions); wait for its job on the thread
    backend, which runs inside this process and would be abandoned on exit."""
    job = activated(kind, version)
    if isinstance(job, jobs.Job):
        click.echo(f"Started {job.kind}: job {job.id}")
        if current_app.config["JOBS_BACKEND"] == "thread":
            done = _follow(job.id)
            if done.status == "failed":
                raise click.ClickException(f"{done.kind} failed: {done.error}")
