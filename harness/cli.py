"""The `itr` command line.

Only click and the plugin manager are imported at start-up; torch, transformers and mlflow load
inside the commands that need them, so `itr --help` and `itr plugins` answer at once. Bad input
(`UserError`) is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from pathlib import Path

import click

from harness import __version__
from harness.errors import EXIT_USAGE, UserError
from harness.termination import EXIT_TERMINATED, Terminated, sigterm_stops


class _State:
    def __init__(self, strict_plugins: bool, plugins_dir: Path | None, debug: bool) -> None:
        self.strict_plugins = strict_plugins
        self.plugins_dir = plugins_dir
        self.debug = debug
        self._host = None

    @property
    def host(self):
        if self._host is None:
            from harness.plugin_manager import PluginHost

            self._host = PluginHost(strict=self.strict_plugins, plugins_dir=self.plugins_dir, debug=self.debug)
        return self._host


results_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where leaderboards and the default MLflow store go.",
)
cache_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Feature cache (default: $ITR_CACHE_DIR or ~/.cache/itr-harness/features).",
)
tracking_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the file's, else sqlite under --results-dir).",
)


def _silence_progress(ctx: click.Context, param: click.Parameter, quiet: bool) -> None:
    """Progress is process-wide (and inherited by workers), so the flag acts as it is parsed."""
    if quiet:
        from harness.progress import silence

        silence()


quiet_option = click.option(
    "--quiet",
    "-q",
    is_flag=True,
    expose_value=False,
    callback=_silence_progress,
    help="No progress bars and no per-epoch or per-shard lines (also ITR_QUIET=1).",
)


def _with(options):
    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="itr")
@click.option("--strict-plugins", is_flag=True, help="Fail if any plugin cannot be loaded.")
@click.option(
    "--plugins-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Also load every *.py file in this folder as a plugin.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors, and for plugins that fail to load.")
@click.pass_context
def cli(ctx: click.Context, strict_plugins: bool, plugins_dir: Path | None, debug: bool) -> None:
    """itr-harness: compare image-text retrieval methods on the same data and protocol."""
    ctx.obj = _State(strict_plugins, plugins_dir, debug)


@cli.command()
@click.option("--check", "import_all", is_flag=True, help="Also import every component's factory; exit 2 if one (or a plugin) is broken.")
@click.pass_obj
def plugins(state: _State, import_all: bool) -> None:
    """List every plugin with its version, hooks and the components it registered."""
    from tabulate import tabulate

    rows = [[info.name, info.version, ", ".join(info.hooks) or "-", status] for info, status in state.host.listing()]
    click.echo(tabulate(rows, headers=["plugin", "version", "hooks", "components"], tablefmt="simple"))
    if not import_all:
        return
    registry = state.host.registry
    broken = registry.import_failures()
    for spec, error in broken:
        click.echo(f"BROKEN {spec.kind}:{spec.name}: {error}", err=True)
        if state.debug and error.__cause__ is not None:
            click.echo("".join(traceback.format_exception(error.__cause__)), err=True)
    for plugin, error in registry.failed_plugins.items():
        click.echo(f"FAILED plugin '{plugin}': {error}", err=True)
    components = sum(1 for _ in registry)
    click.echo(
        f"{components - len(broken)} of {components} component factories import; "
        f"{len(broken)} broken, {len(registry.failed_plugins)} plugins failed to load",
        err=True,
    )
    if broken or registry.failed_plugins:
        sys.exit(EXIT_USAGE)


@cli.command()
@click.argument("name")
@click.option("--kind", default=None, help="The component's kind, when the name is taken in two (e.g. method or text-encoder).")
@click.pass_obj
def describe(state: _State, name: str, kind: str | None) -> None:
    """Show a component's options (type, default, allowed values), what it consumes and produces,
    and its docstring's summary; for a method, its resolved defaults."""
    from tabulate import tabulate

    from harness.describe import describe as describe_component

    found = describe_component(state.host.registry, f"{kind}:{name}" if kind else name)
    spec = found.spec
    click.echo(f"{spec.kind}:{spec.name} (plugin {spec.plugin}; {found.source})")
    if found.summary:
        click.echo(found.summary)
    if found.paper:
        click.echo(f"paper: {found.paper}")
    for direction, what in found.flow:
        click.echo(f"{direction}: {what}")
    if spec.kind == "method":
        click.echo("\nresolved defaults (override any of them in the method's block of an experiment file):")
        click.echo("\n".join(f"{key} = {value}" for key, value in found.defaults))
    elif found.options:
        rows = [[row.name, row.type, row.default, row.allowed] for row in found.options]
        click.echo("\n" + tabulate(rows, headers=["option", "type", "default", "allowed"], tablefmt="simple", disable_numparse=True))
    else:
        click.echo("no options")


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@click.pass_obj
def plan(state: _State, experiment_file: Path) -> None:
    """Validate EXPERIMENT_FILE and print the jobs it expands into."""
    from tabulate import tabulate

    from harness.experiment.plan import plan as plan_jobs

    experiment, jobs = plan_jobs(experiment_file, state.host.registry)
    axes = list(dict.fromkeys(key for job in jobs for key in job.axes))  # grid keys: the value each cell runs with
    rows = [
        [job.label, *(job.axes.get(key, "") for key in axes), job.method, job.dataset.name, job.seed,
         ", ".join(job.config.stages) or "(no training)", job.config_hash]
        for job in jobs
    ]
    headers = ["method", *axes, "recipe", "dataset", "seed", "stages", "config hash"]
    click.echo(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
    cells = len({job.label for job in jobs})
    click.echo(
        f"{len(jobs)} jobs in experiment '{experiment.name}': {cells} method cells × "
        f"{len(experiment.datasets)} datasets × {len(experiment.seeds)} seeds"
    )


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@results_option
@tracking_option
@cache_option
@click.option("--executor", "executor_name", default=None, help="in-process (default), local (worker processes) or ray.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Concurrent jobs; more than 1 implies --executor local.")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE", help="Executor option, e.g. num_gpus=1 (repeatable).")
@click.option("--rerun-finished", is_flag=True, help="Run jobs again even if their configuration already finished.")
@quiet_option
@click.pass_obj
def run(
    state: _State,
    experiment_file: Path,
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
    executor_name: str | None,
    workers: int | None,
    executor_options: tuple[str, ...],
    rerun_finished: bool,
) -> None:
    """Run the unfinished jobs of EXPERIMENT_FILE, log them to MLflow and print the leaderboard."""
    from harness.config.dotted import parse_assignments
    from harness.experiment.invocation import RunRequest, run_file

    request = RunRequest(
        experiment_file,
        results_dir,
        tracking_uri,
        cache_dir,
        executor_name,
        workers,
        parse_assignments(executor_options, "--executor-option"),
        rerun_finished,
        state.plugins_dir,
        state.strict_plugins,
    )
    result = run_file(state.host, request)
    outcome = result.outcome
    click.echo(f"feature cache {result.cache_root}: {result.cache_hits} reused, {result.cache_misses} computed in this process", err=True)
    _show(result.leaderboard)
    for job, error in outcome.failed:
        click.echo(f"FAILED {job.title}: {error}", err=True)
    click.echo(
        f"{len(outcome.finished)} jobs finished, {len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped (finished before)",
        err=True,
    )
    if outcome.failed:
        sys.exit(1)


finished_job_arguments = [
    click.argument("checkpoint", metavar="RUN_ID_OR_FOLDER"),
    click.option("--dataset", "dataset_name", default=None, help="Registered dataset to work on (default: the job's)."),
    click.option(
        "--option", "options", multiple=True, metavar="KEY=VALUE",
        help="Dataset option, e.g. path=/data/coco_precomp, or an evaluation setting, e.g. eval.batch_size=512 (repeatable).",
    ),
    click.option("--split", default=None, help="Split to work on (default: the job's test split)."),
]


def _finished_job_changes(dataset_name: str | None, options: tuple[str, ...], split: str | None) -> tuple[dict, dict]:
    """(dataset entry changes, ``eval`` changes) of `finished_job_arguments`."""
    from harness.config.dotted import parse_assignments

    parsed = parse_assignments(options)
    eval_changes = {key.removeprefix("eval."): value for key, value in parsed.items() if key.startswith("eval.")}
    changes: dict = {"options": {key: value for key, value in parsed.items() if not key.startswith("eval.")}}
    if dataset_name is not None:
        changes["name"] = dataset_name
    if split is not None:
        changes["test"] = split
    return changes, eval_changes


@cli.command("eval")
@_with(finished_job_arguments)
@click.option("--protocol", "protocols", multiple=True, help="Protocol(s): full, coco-1k, coco-5k, f30k-1k, eccv-caption, cxc (default: the job's).")
@results_option
@tracking_option
@cache_option
@quiet_option
@click.pass_obj
def eval_checkpoint(
    state: _State,
    checkpoint: str,
    dataset_name: str | None,
    options: tuple[str, ...],
    split: str | None,
    protocols: tuple[str, ...],
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
) -> None:
    """Evaluate a checkpoint on a dataset and protocol: the one of job run RUN_ID (from `itr run`),
    or a checkpoint folder (model.safetensors + job.json, e.g. from a colleague)."""
    from tabulate import tabulate

    from harness.experiment.finished import reevaluate
    from harness.metrics import RECALLS, RSUM

    changes, eval_changes = _finished_job_changes(dataset_name, options, split)
    if protocols:
        changes["protocols"] = list(protocols)
    result = reevaluate(state.host, checkpoint, changes, eval_changes, results_dir, tracking_uri, cache_dir)
    columns = [*RECALLS, RSUM]
    rows = [[protocol, *(result.metrics[f"{protocol}/{key}"] for key in columns)] for protocol in result.target.protocols]
    click.echo(f"{result.job.label} ({result.source}) on {result.target.title}:{result.target.test}")
    click.echo(tabulate(rows, headers=["protocol", *columns], tablefmt="github", floatfmt=".1f"))


@cli.command()
@_with(finished_job_arguments)
@click.option("--text", default=None, help="A caption of your own: search the split's images.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None, help="An image file: search the split's captions.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Hits to show.")
@results_option
@tracking_option
@cache_option
@quiet_option
@click.pass_obj
def search(
    state: _State,
    checkpoint: str,
    dataset_name: str | None,
    options: tuple[str, ...],
    split: str | None,
    text: str | None,
    image: Path | None,
    top: int,
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
) -> None:
    """Query job run RUN_ID (or a checkpoint folder) with your own caption (--text) or image
    (--image) against its test split; the split's embeddings are cached beside the run."""
    from tabulate import tabulate

    from harness.experiment.search import Query, search as search_gallery

    query = Query.of(text, image)
    changes, eval_changes = _finished_job_changes(dataset_name, options, split)
    result = search_gallery(state.host, checkpoint, query, top, changes, eval_changes, results_dir, tracking_uri, cache_dir)
    click.echo(result.gallery_line(), err=True)
    click.echo(f"{result.job.label} ({result.source}) on {result.target.title}:{result.target.test}: {result.searched} {query.gallery} searched for {query}")
    headers, rows = result.table()
    click.echo(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


@cli.command()
@click.argument("dataset_name", metavar="DATASET")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option (repeatable).")
@click.option("--split", "splits", multiple=True, help="Split(s) to extract (default: all).")
@click.option("--image-backbone", default="efficientnet-lite0", show_default=True)
@click.option("--text-backbone", default="minilm", show_default=True)
@click.option("--text/--no-text", default=True, show_default=True, help="Also cache frozen text features of the captions.")
@cache_option
@quiet_option
@click.pass_obj
def features(
    state: _State,
    dataset_name: str,
    options: tuple[str, ...],
    splits: tuple[str, ...],
    image_backbone: str,
    text_backbone: str,
    text: bool,
    cache_dir: Path | None,
) -> None:
    """Extract and cache the frozen backbone features of DATASET (resumes where it stopped)."""
    from tabulate import tabulate

    from harness.config.dotted import parse_assignments
    from harness.features import FeatureCache, extract_dataset_features

    cache = FeatureCache(cache_dir)
    extracted = extract_dataset_features(
        state.host.registry, dataset_name, parse_assignments(options), splits, image_backbone, text_backbone, text=text, cache=cache
    )
    rows = [
        [split, images, captions, ", ".join(f"{name} {shape}" for name, shape in shapes.items())]
        for split, images, captions, shapes in extracted
    ]
    click.echo(tabulate(rows, headers=["split", "images", "captions", "features (per item)"], tablefmt="simple"))
    click.echo(f"feature cache {cache.root}: {cache.hits} reused, {cache.misses} computed", err=True)


sort_option = click.option("--sort", "sort_by", default="rsum", show_default=True, help="Metric to rank by (best first).")
format_option = click.option(
    "--format", "fmt", type=click.Choice(["markdown", "csv", "html"]), default="markdown", show_default=True,
    help="How to print the leaderboard (all three are written to files).",
)


@cli.command()
@click.argument("target", metavar="COMPONENT_OR_METHOD")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Component option, or a method override such as similarity_head.embed_dim=32 (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed of every build and synthetic batch.")
@click.pass_obj
def check(state: _State, target: str, options: tuple[str, ...], seed: int) -> None:
    """Run the contract checks (interface, leakage, determinism, gradients, checkpoint) on a
    component or method (`kind:name` when a name is taken twice); exit 1 if one fails."""
    from harness.config.dotted import parse_assignments
    from harness.conformance import run_checks

    report = run_checks(state.host.registry, target, parse_assignments(options), seed=seed)
    click.echo(report.table())
    click.echo(report.summary(), err=True)
    sys.exit(report.exit_code)


statistics_options = [
    click.option("--spread", type=click.Choice(["ci", "std"]), default="ci", show_default=True,
                 help="What ± shows: the bootstrap interval over queries, or the std over seeds."),
    click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True),
    click.option("--resamples", type=click.IntRange(min=100), default=1000, show_default=True),
]


experiment_arguments = [
    click.argument("experiment_file", type=click.Path(path_type=Path), required=False),
    click.option("--experiment", "experiment_name", default=None, help="Experiment name (instead of a file)."),
    results_option,
    tracking_option,
]


@cli.command()
@_with(experiment_arguments)
@sort_option
@format_option
@_with(statistics_options)
@click.pass_obj
def leaderboard(state: _State, experiment_file, experiment_name, results_dir, tracking_uri, sort_by, fmt, spread, confidence, resamples) -> None:
    """Print and write the Recall@K / rSum leaderboard of an experiment, with its plots."""
    from harness.experiment.finished import experiment_store
    from harness.publish import publish_leaderboard

    uri, name = experiment_store(experiment_file, experiment_name, results_dir, tracking_uri)
    _show(publish_leaderboard(state.host.observers, uri, name, results_dir, sort_by=sort_by, fmt=fmt, spread=spread, confidence=confidence, resamples=resamples))


def _show(published) -> None:
    click.echo(published.text)
    click.echo(f"written: {', '.join(str(path) for path in published.tables)} and {len(published.plots)} plots in {published.folder / 'plots'}", err=True)
    click.echo(f"report: {published.report}", err=True)


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--experiment", "experiment_name", default=None, help="Read RUN_A and RUN_B as leaderboard rows (method labels) of this experiment.")
@click.option("--dataset", default=None, help="With --experiment: the dataset, when a label ran on several.")
@click.option("--protocol", default=None, help="Protocol to compare on (default: the first the runs were evaluated on).")
@results_option
@tracking_option
@_with(statistics_options[1:])
@click.pass_obj
def compare(state: _State, run_a, run_b, experiment_name, dataset, protocol, results_dir, tracking_uri, confidence, resamples) -> None:
    """Is A better than B? Paired bootstrap differences on the same test queries.

    RUN_A and RUN_B are job run ids, or with --experiment two method labels of its leaderboard
    (all their seeds; each side's metric is its mean over seeds).
    """
    import pandas as pd
    from tabulate import tabulate

    from harness.experiment.finished import job_run_titles
    from harness.statistics.reports import compare_labels

    result = compare_labels(run_a, run_b, experiment_name, dataset, protocol, results_dir, tracking_uri, resamples, confidence)
    if experiment_name is None:
        titles = job_run_titles([run_a, run_b], results_dir, tracking_uri)
        side_a, side_b = (f"run {run} ({titles[run]})" for run in (run_a, run_b))
    else:
        side_a, side_b = (f"{label} ({len(runs)} run(s))" for label, runs in ((run_a, result.runs_a), (run_b, result.runs_b)))
    rows = [
        [d.metric, f"{d.a:.1f}", f"{d.b:.1f}", f"{d.difference:.1f}", f"[{d.low:.1f}, {d.high:.1f}]", f"{d.p_value:.3f}",
         *("" if pd.isna(result.spread.loc[d.metric, side]) else f"{result.spread.loc[d.metric, side]:.1f}" for side in ("A", "B"))]
        for d in result.differences
    ]
    headers = ["metric", "A", "B", "A − B", f"{confidence:.0%} interval", "p", "A seed std", "B seed std"]
    click.echo(f"A = {side_a}, B = {side_b}, protocol {result.protocol}, {resamples} paired resamples")
    click.echo(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


@cli.command()
@_with(experiment_arguments)
@click.option("--by", default="length", show_default=True, help="'length' (caption length buckets) or a per-caption tag of the dataset.")
@click.option("--lengths", default="9,12", show_default=True, help="Short/medium and medium/long thresholds in words.")
@click.pass_obj
def slices(state: _State, experiment_file, experiment_name, results_dir, tracking_uri, by, lengths) -> None:
    """t2i Recall@K by caption-query slice (length buckets or a dataset's caption tags)."""
    from tabulate import tabulate

    from harness.experiment.finished import experiment_store
    from harness.publish import publish_slices

    try:
        thresholds = tuple(int(part) for part in lengths.split(","))
    except ValueError:
        thresholds = ()
    if len(thresholds) != 2:
        raise UserError(f"--lengths {lengths!r}: expected two word counts, e.g. 9,12")
    uri, name = experiment_store(experiment_file, experiment_name, results_dir, tracking_uri)
    table, csv_path, plots = publish_slices(uri, name, results_dir, by, thresholds)
    click.echo(tabulate(table, headers="keys", tablefmt="github", floatfmt=".1f", showindex=False))
    click.echo(f"written: {csv_path} and {len(plots)} plots in {csv_path.parent / 'plots'}", err=True)


@cli.command("export-rankings")
@click.argument("run_id", metavar="RUN")
@click.option("--protocol", default=None, help="Protocol whose rankings to write (default: the first the run stored).")
@click.option("--format", "fmt", type=click.Choice(["json", "parquet"]), default="json", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=None, help="Keep each query's top K (default: all the run stored).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File to write (default: rankings-RUN-PROTOCOL.FORMAT).")
@results_option
@tracking_option
@click.pass_obj
def export_rankings(state: _State, run_id, protocol, fmt, top, output, results_dir, tracking_uri) -> None:
    """Write job run RUN's per-query rankings (top k candidates and scores, both directions, by
    dataset ids) for outside tools: ranx, pytrec_eval, eccv_caption (docs/experiments.md)."""
    import tempfile

    from harness.evaluation.rankings import Rankings
    from harness.evaluation.rankings import export_rankings as write_rankings
    from harness.tracking import choose_tracking_uri, download_rankings

    with tempfile.TemporaryDirectory() as folder:
        protocol, stored = download_rankings(choose_tracking_uri(tracking_uri, None, results_dir), run_id, protocol, Path(folder))
        rankings = Rankings.load(stored)
    path = write_rankings(rankings, protocol, fmt, output or Path(f"rankings-{run_id}-{protocol}.{fmt}"), top)
    click.echo(f"written: {path} ({protocol}, {len(rankings.image_ids)} image and {len(rankings.caption_ids)} caption queries)")


UNWRITABLE = {
    errno.ENOSPC: "free space or choose another",
    errno.EDQUOT: "free space or choose another",
    errno.EACCES: "choose a writable",
    errno.EPERM: "choose a writable",
    errno.EROFS: "choose a writable",
    errno.ENOTDIR: "choose a writable",
}
"""Write failures the user fixes outside the harness (disk full, quota, permissions, a file in
the way), with what to do about them."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the CLI; bad input (UserError) and a file that cannot be written
    (disk full, permissions) become one line and exit code 2."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per small file is noise
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        with sigterm_stops():  # a preempted `itr run` closes its runs KILLED (harness.termination)
            cli.main(args=argv, prog_name="itr", standalone_mode=False)
    except UserError as exc:
        _stop(str(exc), debug)
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        _stop(
            f"{exc.filename or 'a results file'}: cannot write ({exc.strerror}); {UNWRITABLE[exc.errno]} "
            "--results-dir / --cache-dir (finished runs are kept in MLflow: `itr leaderboard` rewrites the tables)",
            debug,
        )
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, Terminated):
            click.echo("terminated (SIGTERM): runs closed as KILLED; `itr run` again continues from the last resume point", err=True)
            sys.exit(EXIT_TERMINATED)
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


def _stop(message: str, debug: bool) -> None:
    """Report the error being handled as one line (after its traceback with --debug); exit 2."""
    if debug:
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
