"""The dashboard benchmark's chart, the seed's comparison: the three fan-in
modes side by side in end-to-end latency, overhead over the slowest branch
and pre-resolved inputs. SVG through matplotlib's Agg backend, text as text
(no embedded fonts) and no date, so a chart is small and diffs well."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

COLOURS = {"classic": "#8c8c8c", "eager": "#4c78a8", "future": "#f58518"}
STATS = (("mean", "mean_ms"), ("p50", "p50_ms"), ("p95", "p95_ms"))


def _label(ms):
    """A bar's label: whole milliseconds, tenths below 10 ms."""
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def _grouped(ax, modes, prefix, title, unit):
    """Draws PREFIX mean/p50/p95 of every mode as groups of bars on AX."""
    width = 0.8 / len(modes)
    for k, (mode, m) in enumerate(modes.items()):
        xs = [i + (k - (len(modes) - 1) / 2) * width for i in range(len(STATS))]
        bars = ax.bar(xs, [m[f"{prefix}_{key}"] for _, key in STATS], width, label=mode, color=COLOURS.get(mode))
        ax.bar_label(bars, labels=[_label(b.get_height()) for b in bars], fontsize=7, padding=1)
    ax.set_xticks(range(len(STATS)), [label for label, _ in STATS])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    ax.margins(y=0.12)


def draw_dashboard(result, path):
    """Writes the chart of RESULT (the dashboard benchmark's result, as in
    build/bench/dashboard.json) to PATH as SVG. Raises OSError when PATH
    cannot be written."""
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "mqpipe-bench", "font.size": 8})
    modes = result["modes"]
    fig, (e2e, over, pre) = plt.subplots(1, 3, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 3, 1.6]})
    _grouped(e2e, modes, "e2e", "end-to-end latency", "ms")
    _grouped(over, modes, "overhead", "overhead over the slowest branch", "ms")
    bars = pre.bar(range(len(modes)), [m["pre_resolved_mean"] for m in modes.values()],
                   color=[COLOURS.get(mode) for mode in modes])
    pre.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    pre.set_xticks(range(len(modes)), list(modes))
    pre.set_ylim(0, 6.6)
    pre.set_title("pre-resolved inputs", fontsize=10)
    pre.set_ylabel("of 6 (mean)")
    fig.legend(*e2e.get_legend_handles_labels(), loc="lower center", ncol=len(modes), frameon=False, fontsize=8)
    for ax in (e2e, over, pre):
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"scripts/bench dashboard: {result['requests']} requests per mode, setup {result['setup_ms']} ms, "
                 f"latency scale {result['latency_scale']:g}\nfuture vs classic: "
                 f"{result['future_vs_classic_improvement_pct']:.1f} % lower mean e2e, "
                 f"{result['future_vs_classic_improvement_same_branches_pct']:.1f} % at the same branch latencies",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
