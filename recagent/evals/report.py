"""`report.md` and PNG plots for a run's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recagent.evals.summary import HEADLINE
from recagent.workspace import atomic_write_text

BEYOND_COLUMNS = [
    ("coverage", "coverage", "{:.3f}"),
    ("diversity", "diversity", "{:.3f}"),
    ("popularity_percentile", "pop. pct", "{:.3f}"),
    ("novelty", "novelty", "{:.2f}"),
    ("latency_p50_ms", "p50 ms", "{:.1f}"),
    ("latency_p95_ms", "p95 ms", "{:.1f}"),
    ("llm_calls_per_request", "LLM calls", "{:.2f}"),
    ("input_tokens_per_request", "tokens in", "{:.0f}"),
    ("output_tokens_per_request", "tokens out", "{:.0f}"),
    ("cost_per_request_usd", "$/request", "{:.5f}"),
    ("repairs_per_request", "repairs", "{:.2f}"),
    ("explanation_faithfulness", "faithful expl.", "{:.3f}"),
]


def _fmt(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def markdown(summary: dict[str, Any], config: dict[str, Any]) -> str:
    pipes = summary["pipelines"]
    lines = [
        f"# Evaluation run {summary['run_id']}",
        "",
        f"- dataset: `{config['dataset']}` "
        f"(fingerprint `{config['fingerprints'].get('data', '')[:12]}`), "
        f"split `{config['split']}`, {summary['users']} users, seed {config['seed']}",
        f"- protocol: `{summary['protocol']}`; pipelines: {', '.join(pipes)}",
        f"- recagent {config['recagent_version']}; prompts "
        + ", ".join(f"{k}={v}" for k, v in sorted(config.get("prompt_hashes", {}).items())),
    ]
    lines += [f"- {note}" for note in summary["notes"]]
    metrics = list(next(iter(pipes.values()))["accuracy"]) if pipes else []
    lines += [
        "",
        "## Accuracy (mean, 95% bootstrap interval)",
        "",
        "| pipeline | " + " | ".join(metrics) + " | failures |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for name, entry in pipes.items():
        cells = []
        for m in metrics:
            a = entry["accuracy"].get(m)
            cells.append(
                "-" if a is None else f"{a['mean']:.4f} [{a['ci'][0]:.4f}, {a['ci'][1]:.4f}]"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {entry['failures']} |")
    lines += [
        "",
        "## Beyond accuracy and cost (per request)",
        "",
        "| pipeline | " + " | ".join(c[1] for c in BEYOND_COLUMNS) + " |",
        "|---" * (len(BEYOND_COLUMNS) + 1) + "|",
    ]
    for name, entry in pipes.items():
        b = entry["beyond"]
        lines.append(
            f"| {name} | " + " | ".join(_fmt(b.get(k), p) for k, _, p in BEYOND_COLUMNS) + " |"
        )
    if summary["protocol"] == "candidates":
        keys = sorted({k for e in pipes.values() for k in e.get("ranker_errors", {})})
        lines += [
            "",
            "## Ranker errors",
            "",
            "| pipeline | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for name, entry in pipes.items():
            errs = entry.get("ranker_errors", {})
            lines.append(
                f"| {name} | " + " | ".join(_fmt(errs.get(k), "{:.3f}") for k in keys) + " |"
            )
    if summary["protocol"] == "conversation":
        lines += [
            "",
            "## Conversations",
            "",
            "| pipeline | hit rate | turns to hit | LLM calls | tool failures | title leaks |",
            "|---|---|---|---|---|---|",
        ]
        for name, entry in pipes.items():
            c = entry["conversation"]
            lines.append(
                f"| {name} | {c['hit_rate']:.3f} | {_fmt(c['turns_to_hit'], '{:.2f}')} | "
                f"{c['llm_calls_per_conversation']:.2f} | "
                f"{c['tool_failures_per_conversation']:.2f} | "
                f"{c['title_leaks']} |"
            )
    lines += [
        "",
        "## Plots",
        "",
        "![metrics](metrics.png)",
        "![latency](latency.png)",
        "![cost](cost.png)",
        "",
    ]
    return "\n".join(lines)


def plots(summary: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pipes = summary["pipelines"]
    names = list(pipes)
    out = []
    headline = HEADLINE[summary["protocol"]]
    shown = [m for m in (headline, "HR@10", "MRR") if all(m in pipes[n]["accuracy"] for n in names)]
    fig, axes = plt.subplots(
        1, max(1, len(shown)), figsize=(4 * max(1, len(shown)), 3.2), squeeze=False
    )
    for ax, metric in zip(axes[0], shown, strict=False):
        means = [pipes[n]["accuracy"][metric]["mean"] for n in names]
        lows = [
            m - pipes[n]["accuracy"][metric]["ci"][0] for m, n in zip(means, names, strict=True)
        ]
        highs = [
            pipes[n]["accuracy"][metric]["ci"][1] - m for m, n in zip(means, names, strict=True)
        ]
        ax.bar(names, means, yerr=[lows, highs], capsize=4, color="#4c72b0")
        ax.set_title(f"{metric} (95% CI)")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    out.append(folder / "metrics.png")
    fig.savefig(out[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    p50 = [pipes[n]["beyond"]["latency_p50_ms"] or 0 for n in names]
    p95 = [pipes[n]["beyond"]["latency_p95_ms"] or 0 for n in names]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95")
    ax.set_xticks(list(xs), names, rotation=30)
    ax.set_yscale("symlog")
    ax.set_ylabel("ms per request")
    ax.legend()
    fig.tight_layout()
    out.append(folder / "latency.png")
    fig.savefig(out[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    calls = [pipes[n]["beyond"]["llm_calls_per_request"] for n in names]
    tokens = [
        pipes[n]["beyond"]["input_tokens_per_request"]
        + pipes[n]["beyond"]["output_tokens_per_request"]
        for n in names
    ]
    ax.bar(names, calls, color="#dd8452")
    ax.set_ylabel("LLM calls per request")
    ax2 = ax.twinx()
    ax2.plot(names, tokens, "o-", color="#55a868")
    ax2.set_ylabel("tokens per request")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    out.append(folder / "cost.png")
    fig.savefig(out[-1], dpi=100)
    plt.close(fig)
    return out


def write_report(summary: dict[str, Any], config: dict[str, Any], folder: Path) -> Path:
    plots(summary, folder)
    path = folder / "report.md"
    atomic_write_text(path, markdown(summary, config))
    return path


__all__ = ["markdown", "plots", "write_report"]
