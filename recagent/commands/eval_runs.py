"""`recagent eval run | resume | compare | list`: the evaluation harness from the command line
(registered on the `eval` group next to `eval sasrec`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from recagent.commands.context import AppContext, get_context
from recagent.commands.tables import print_fitted
from recagent.config import Settings
from recagent.data.dataset import Dataset
from recagent.errors import ConfigError
from recagent.evals.pipelines import LLM_PIPELINES, PIPELINES
from recagent.evals.ratings import LLM_PREDICTORS, PREDICTORS
from recagent.evals.runs import RunConfig, RunDir, list_runs, new_run_id
from recagent.evals.summary import HEADLINE, load_prices, summarize
from recagent.evals.tags import SPACES
from recagent.progress import Reporter
from recagent.workspace import Workspace

if TYPE_CHECKING:  # the harness loads the agent, torch and scipy: only when a command runs
    from recagent.evals.env import EvalEnv
    from recagent.evals.ray_runner import RayOptions

PROTOCOLS = ("full-rank", "candidates", "conversation", "dialogues", "requests", "tags", "ratings")
DEFAULT_PIPELINES = {
    "tags": "plain,knowledge,shuffled-knowledge",
    "ratings": "global-mean,item-mean,biases,mf",
}
"""Protocols whose pipelines are their own (text spaces, rating predictors), with defaults."""
RayFlag = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Fan the cases out over Ray workers, each loading the data, models and index "
        "once (needs the ray extra). Records are the same as a run in one process.",
    ),
]
AddressFlag = Annotated[
    str | None,
    typer.Option(
        help="With --ray: join this Ray cluster (e.g. auto, or ray://host:10001; its machines "
        "must see the workspace at the same path) instead of starting one on this machine."
    ),
]
WorkersFlag = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=256,
        help="Parallel workers: threads in this process, or Ray workers with --ray (one CPU "
        "each). LLM requests in flight stay within \\[llm] concurrency. \\[default: 1; with "
        "--ray every CPU]",
    ),
]


def open_env(
    workspace: Workspace, settings: Settings, config: RunConfig, reporter: Reporter | None = None
) -> EvalEnv:
    """What `config`'s run evaluates against (also how each Ray worker builds its own)."""
    from recagent.app import eval_services
    from recagent.evals.env import EvalEnv

    dataset = Dataset.load(workspace, config.dataset)
    services = eval_services(
        workspace,
        settings,
        dataset,
        reporter,
        train_only=config.protocol not in ("dialogues", "requests"),
    )
    return EvalEnv(services, config.llm, config.use_cache, config.llm_rpm)


def worker_env(root: Path, settings: dict[str, Any], config: RunConfig) -> EvalEnv:
    """`open_env` on a Ray worker: settings travel as plain values (the loaded settings'
    class is made per call and does not pickle), exactly as the driver resolved them."""
    return open_env(Workspace(root), Settings.model_validate(settings), config)


def _env(app_ctx: AppContext, config: RunConfig) -> EvalEnv:
    return open_env(app_ctx.workspace, app_ctx.settings, config, app_ctx.reporter)


def _ray_options(
    app_ctx: AppContext, config: RunConfig, ray: bool, address: str | None, workers: int | None
) -> RayOptions | None:
    """--ray's options (Ray must be importable), or None for a run in this process."""
    if not ray:
        if address is not None:
            raise ConfigError("--address is for --ray")
        return None
    from recagent.evals.ray_runner import RayOptions, import_ray

    import_ray()
    settings = app_ctx.settings.model_dump()
    make_env = partial(worker_env, app_ctx.workspace.root, settings, config)
    return RayOptions(make_env, address, workers)


def _finish(app_ctx: AppContext, run_dir: RunDir, env: EvalEnv) -> None:
    from recagent.evals.report import write_report

    config = run_dir.config()
    records = run_dir.records()
    summary = summarize(
        config,
        records,
        env.dataset,
        env.popularity.scores,
        load_prices(app_ctx.workspace.root / "prices.yaml"),
    )
    if config.use_cache and "llm" in env.__dict__:
        summary["llm_cache"] = env.llm.stats
    run_dir.write_summary(summary)
    report = write_report(summary, config.model_dump(mode="json"), run_dir.path)
    _print_summary(app_ctx, summary)
    app_ctx.out.print(f"[green]run {config.run_id}[/] -> {escape(str(report))}")


def _harness(
    config: RunConfig,
    env: EvalEnv,
    run_dir: RunDir,
    app_ctx: AppContext,
    ray: RayOptions | None = None,
) -> None:
    from recagent.evals.harness import run

    run(config, env, run_dir, app_ctx.reporter, ray=ray)


def _print_summary(app_ctx: AppContext, summary: dict) -> None:
    pipes = summary["pipelines"]
    if not pipes:
        return
    metrics = [m for m in next(iter(pipes.values()))["accuracy"] if not m.endswith(" all")]
    rows = []
    for name, entry in pipes.items():
        acc = entry["accuracy"]
        b = entry["beyond"]
        rows.append(
            [
                escape(name),
                *(f"{acc[m]['mean']:.4f}" if m in acc else "-" for m in metrics),
                f"{b['latency_p50_ms'] or 0:.1f}",
                f"{b['llm_calls_per_request']:.2f}",
                str(entry["failures"]),
            ]
        )
    headers = ["pipeline", *metrics, "p50 ms", "LLM calls", "failures"]
    print_fitted(app_ctx.out, headers, rows)


def run_cmd(
    ctx: typer.Context,
    protocol: Annotated[
        str,
        typer.Option(
            help="full-rank | candidates | conversation | dialogues | requests | tags | ratings"
        ),
    ] = "full-rank",
    pipelines: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated: {', '.join(PIPELINES)}; tags: {', '.join(SPACES)}; "
            f"ratings: {', '.join(PREDICTORS)} \\[default: popularity,sasrec,vector,hybrid,"
            f"planner; tags: {DEFAULT_PIPELINES['tags']}; ratings: "
            f"{DEFAULT_PIPELINES['ratings']}].",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    split: Annotated[str, typer.Option(help="test | valid")] = "test",
    users: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Evaluate a seeded sample of users (dialogues, requests: of cases) \\[default: "
            "all for full-rank, dialogues and requests, 200 for candidates, 50 for conversation].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for user sampling and candidate lists.")] = 0,
    k: Annotated[
        int, typer.Option(min=1, max=100, help="List length for list-based pipelines.")
    ] = 50,
    workers: WorkersFlag = None,
    candidates_from: Annotated[
        str, typer.Option(help="random | hybrid (candidates protocol)")
    ] = "random",
    simulator: Annotated[str, typer.Option(help="rules | llm (conversation protocol)")] = "rules",
    llm: Annotated[
        str | None, typer.Option(help="offline | openai:<model> for LLM pipelines")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Bypass the LLM call cache.")
    ] = False,
    llm_rpm: Annotated[
        float, typer.Option(min=0, help="Rate limit for LLM calls per minute (0 = none).")
    ] = 0.0,
    cases: Annotated[
        Path | None,
        typer.Option(
            help="dialogues: the case file (JSON lines as in redial-dev); requests: a case "
            "file other than the packaged one (see the README)."
        ),
    ] = None,
    ray: RayFlag = False,
    address: AddressFlag = None,
) -> None:
    """Evaluate pipelines on one protocol, saved as runs/<id>/ in the workspace.

    Ctrl-C keeps everything done so far: continue with `recagent eval resume <id>`."""
    app_ctx = get_context(ctx)
    if pipelines is None:
        pipelines = DEFAULT_PIPELINES.get(protocol, "popularity,sasrec,vector,hybrid,planner")
    names = [p.strip() for p in pipelines.split(",") if p.strip()]
    allowed_names = {"tags": tuple(SPACES), "ratings": PREDICTORS}.get(protocol, PIPELINES)
    unknown = [p for p in names if p not in allowed_names]
    if unknown or not names:
        raise ConfigError(
            f"unknown pipeline(s) {', '.join(unknown) or '(none)'} for the {protocol} protocol; "
            f"choose from {', '.join(allowed_names)}"
        )
    for value, allowed, what in (
        (protocol, PROTOCOLS, "protocol"),
        (split, ("test", "valid"), "split"),
        (candidates_from, ("random", "hybrid"), "candidates-from"),
        (simulator, ("rules", "llm"), "simulator"),
    ):
        if value not in allowed:
            raise ConfigError(f"--{what} must be one of {', '.join(allowed)}, not {value!r}")
    if protocol == "conversation" and not {"planner", "llm"} >= set(names):
        raise ConfigError(
            "the conversation protocol evaluates the agent: use --pipelines planner,llm"
        )
    if "llm-titles" in names and protocol not in ("dialogues", "full-rank"):
        raise ConfigError(
            "llm-titles (the model alone) runs on the dialogues and full-rank protocols"
        )
    if protocol == "dialogues":
        if cases is None:
            raise ConfigError("the dialogues protocol needs --cases FILE.jsonl")
        if "llm-rerank" in names:
            raise ConfigError("llm-rerank ranks a candidate list; the dialogues protocol has none")
        cases = cases.resolve()
    elif protocol == "requests":
        if not {"planner", "llm"} >= set(names):
            raise ConfigError("the requests protocol evaluates the agent: --pipelines planner,llm")
        cases = cases.resolve() if cases is not None else None
    elif protocol == "tags":
        if cases is None:
            raise ConfigError("the tags protocol needs --cases path/to/tags.csv (MovieLens)")
        if not cases.is_file():
            raise ConfigError(f"--cases {cases}: no such file")
        cases = cases.resolve()
    elif cases is not None:
        raise ConfigError("--cases is for the dialogues, requests and tags protocols")
    config = RunConfig(
        run_id=new_run_id(),
        protocol=protocol,
        pipelines=names,  # type: ignore[arg-type]
        dataset=app_ctx.dataset_name(dataset),
        split=split,
        users=users,  # type: ignore[arg-type]
        seed=seed,
        k=k,
        workers=workers or 1,
        candidates_from=candidates_from,  # type: ignore[arg-type]
        simulator=simulator,
        llm=llm,
        cases=str(cases) if cases else None,
        use_cache=not no_cache,
        llm_rpm=llm_rpm,  # type: ignore[arg-type]
    )
    ray_options = _ray_options(app_ctx, config, ray, address, workers)
    env = _env(app_ctx, config)
    if any(p in (*LLM_PIPELINES, *LLM_PREDICTORS) for p in names) or simulator == "llm":
        env.llm  # noqa: B018 - fail now, not after the offline pipelines ran
    if protocol == "tags":  # a space that cannot be built stops the run before it starts
        from recagent.evals.tags import make_space

        for name in names:
            make_space(name, env.dataset, env.text_embedder, env.workspace)
    env.stamp(config)
    run_dir = RunDir(app_ctx.workspace.runs_dir, config.run_id)
    run_dir.create(config)
    app_ctx.err.print(f"run {config.run_id} ({escape(str(run_dir.path))})")
    try:
        _harness(config, env, run_dir, app_ctx, ray_options)
    except KeyboardInterrupt:
        app_ctx.err.print(
            f"[yellow]interrupted[/]: resume with `recagent eval resume {config.run_id}`"
        )
        raise typer.Exit(130) from None
    _finish(app_ctx, run_dir, env)


def resume_cmd(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    ray: RayFlag = False,
    address: AddressFlag = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Ray workers with --ray \\[default: every CPU]; without --ray the run's own "
            "--workers.",
        ),
    ] = None,
) -> None:
    """Continue a run that crashed or was interrupted; finished users are not redone (in this
    process, or over Ray with --ray, whichever the run started with)."""
    app_ctx = get_context(ctx)
    run_dir = RunDir(app_ctx.workspace.runs_dir, run_id)
    config = run_dir.config()
    if workers is not None and not ray:
        raise ConfigError("resume --workers is for --ray (a run keeps its own --workers)")
    ray_options = _ray_options(app_ctx, config, ray, address, workers)
    env = _env(app_ctx, config)
    changed = env.changes(config)
    if changed:
        raise ConfigError(
            f"run {run_id} was made against other inputs ({', '.join(changed)} changed "
            "since); start a new run"
        )
    before = len(run_dir.records())
    _harness(config, env, run_dir, app_ctx, ray_options)
    app_ctx.err.print(f"resumed: {len(run_dir.records()) - before} new records")
    _finish(app_ctx, run_dir, env)


def compare_cmd(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="Baseline run id.")],
    run_b: Annotated[
        str | None, typer.Argument(help="Run to compare with it [default: run_a itself].")
    ] = None,
    pair: Annotated[
        str | None,
        typer.Option(
            help="BASE,OTHER: pipeline OTHER (of run_b) against pipeline BASE (of run_a), case "
            "by case, e.g. planner,llm within one run."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per-metric deltas (b - a) over the same users or cases, with paired significance
    tests: one pipeline across two runs, or two pipelines (--pair) of one run."""
    app_ctx = get_context(ctx)
    a = RunDir(app_ctx.workspace.runs_dir, run_a)
    b = RunDir(app_ctx.workspace.runs_dir, run_b or run_a)
    from recagent.evals.compare import compare

    pipelines = None
    if pair is not None:
        names = [p.strip() for p in pair.split(",") if p.strip()]
        if len(names) != 2:
            raise ConfigError(f"--pair takes two pipelines, BASE,OTHER; got {pair!r}")
        pipelines = (names[0], names[1])
    elif run_b is None:
        raise ConfigError("give a second run, or --pair BASE,OTHER to compare within one run")
    deltas, warnings = compare(a.config(), a.records(), b.config(), b.records(), pipelines)
    if as_json:
        app_ctx.print_json({"warnings": warnings, "deltas": [d.model_dump() for d in deltas]})
        return
    for w in warnings:
        app_ctx.err.print(f"[yellow]warning:[/] {escape(w)}")
    headers = ["pipeline", "metric", "users", "a", "b", "delta", "95% CI", "p (t)", "p (Wilcoxon)"]
    rows = []
    for d in deltas:
        style = "bold" if d.p_ttest < 0.05 else ""
        rows.append(
            [
                escape(d.pipeline),
                escape(d.metric),
                str(d.users),
                f"{d.a:.4f}",
                f"{d.b:.4f}",
                f"[{style}]{d.delta:+.4f}[/]" if style else f"{d.delta:+.4f}",
                escape(f"[{d.ci[0]:+.4f}, {d.ci[1]:+.4f}]"),
                f"{d.p_ttest:.3g}",
                f"{d.p_wilcoxon:.3g}",
            ]
        )
    print_fitted(app_ctx.out, headers, rows, keep=2)


def list_cmd(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Past runs with their headline numbers."""
    app_ctx = get_context(ctx)
    rows: list[dict[str, Any]] = []
    for run_dir in list_runs(app_ctx.workspace.runs_dir):
        config = run_dir.config()
        summary = run_dir.summary()
        headline = HEADLINE[config.protocol]
        numbers = {}
        if summary:
            for name, entry in summary["pipelines"].items():
                value = entry["accuracy"].get(headline, {}).get("mean")
                numbers[name] = round(value, 4) if value is not None else None
        rows.append(
            {
                "run_id": config.run_id,
                "created": config.created_at,
                "protocol": config.protocol,
                "dataset": config.dataset,
                "users": summary["users"] if summary else None,
                "status": "complete" if summary else "incomplete",
                "metric": headline,
                "headline": numbers,
            }
        )
    if as_json:
        app_ctx.print_json(rows)
        return
    if not rows:
        app_ctx.out.print("no evaluation runs yet: `recagent eval run`")
        return
    cells = []
    for r in rows:
        heads = ", ".join(f"{k} {v}" for k, v in r["headline"].items())
        cells.append(
            [
                r["run_id"],
                escape(str(r["created"])),
                r["protocol"],
                escape(r["dataset"]),
                str(r["users"] or "-"),
                r["status"],
                escape(f"{r['metric']}: {heads}" if heads else "-"),
            ]
        )
    headers = ["run", "created", "protocol", "dataset", "users", "status", "headline"]
    print_fitted(app_ctx.out, headers, cells, wrap=["headline"])


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("resume")(resume_cmd)
    app.command("compare")(compare_cmd)
    app.command("list")(list_cmd)


__all__ = ["register"]
