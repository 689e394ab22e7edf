"""The few-shot runner's report: a markdown table per task and a learning-curve plot, from results.jsonl's rows.

A cell is the mean +- the sample standard deviation (n - 1) of accuracy over the draws, in %, with the
number of draws when it is not five. The ceiling row is all-MiniLM-L6-v2 fine-tuned on the full
training split, the figure docs/RESULTS.md's "Fine-tuning" section measured (not rerun here).
"""

import os
import statistics

from minillm.data.fewshot import DRAW_SEEDS

# task -> (accuracy %, what it is): docs/RESULTS.md, section "Fine-tuning"
CEILINGS = {
    "sentiment": (88.76, "all-MiniLM-L6-v2 fine-tuned on the first 48,000 SST-2 phrases, 1 epoch (dev)"),
    "news": (88.95, "all-MiniLM-L6-v2 fine-tuned on all 5,320 training articles, 1 epoch (test)"),
    "intent": (98.00, "all-MiniLM-L6-v2 fine-tuned on all 13,084 utterances, 1 epoch (test)"),
}
TITLES = {"sentiment": "SST-2", "news": "AG News", "intent": "SNIPS"}


def row_name(method, augment):
    return method if augment == "none" else f"{method} + {augment.upper()}"


def grouped(rows):
    """{task: {(method, augment): {K: [accuracy %, one per draw]}}}, in the order first seen."""
    out = {}
    for row in rows:
        cell = out.setdefault(row["task"], {}).setdefault((row["method"], row["augment"]), {})
        cell.setdefault(row["k"], []).append(100 * row["accuracy"])
    return out


def cell(scores, drawn=True):
    """mean ± sd of a cell's scores; one score alone (a method that reads no draw: drawn False) as it is."""
    if len(scores) == 1:
        return f"{scores[0]:.2f}" + ("" if len(DRAW_SEEDS) == 1 or not drawn else " (1 draw)")
    text = f"{statistics.mean(scores):.2f} ± {statistics.stdev(scores):.2f}"
    return text if len(scores) == len(DRAW_SEEDS) else f"{text} ({len(scores)} draws)"


def task_table(task, methods, rows):
    """The markdown table of one task: zero-shot first, then the methods as run, then the ceiling."""
    ks = sorted({k for by_k in methods.values() for k in by_k})
    order = sorted(methods, key=lambda m: m[0] != "zero-shot")  # stable: otherwise as first run
    header = "| method | " + " | ".join(f"K={k}" for k in ks) + " | all |"
    lines = [header, "|---|" + "---:|" * (len(ks) + 1)]
    for key in order:
        lines.append(f"| {row_name(*key)} | " + " | ".join(cell(methods[key][k], k > 0) if k in methods[key] else ""
                                                         for k in ks) + " | |")
    if task in CEILINGS:
        lines.append("| full-data fine-tuning* | " + " | " * len(ks) + f"{CEILINGS[task][0]:.2f} |")
    evaluated = sorted({(r["eval_split"], r["eval_texts"]) for r in rows if r["task"] == task})
    notes = {r["note"] for r in rows if r["task"] == task}
    caption = (f"### {TITLES.get(task, task)} ({task})\n\nAccuracy in % on "
               + "; ".join(f"{n:,} texts of {s}" for s, n in evaluated) + f", mean ± sd over the draws (seeds "
               f"{', '.join(map(str, DRAW_SEEDS))}). " + " ".join(sorted(notes)) + ".")
    footer = f"\n\n\\* {CEILINGS[task][1]}, from docs/RESULTS.md." if task in CEILINGS else ""
    return caption + "\n\n" + "\n".join(lines) + footer


def plot_curves(path, tables):
    """learning-curves.png: accuracy against K (log scale), a line a method with the sd as error bars,
    zero-shot and the ceiling as horizontal lines. Returns False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4), squeeze=False)
    names = sorted({row_name(*key) for methods in tables.values() for key in methods})
    colours = {name: f"C{i}" for i, name in enumerate(names)}  # a method has one colour in every panel
    for ax, (task, methods) in zip(axes[0], tables.items()):
        for (method, augment), by_k in methods.items():
            ks = sorted(k for k in by_k if k > 0)
            if method == "zero-shot" and 0 in by_k:
                ax.axhline(statistics.mean(by_k[0]), linestyle="--", color="grey", label="zero-shot")
            if ks:
                means = [statistics.mean(by_k[k]) for k in ks]
                sds = [statistics.stdev(by_k[k]) if len(by_k[k]) > 1 else 0.0 for k in ks]
                ax.errorbar(ks, means, yerr=sds, marker="o", capsize=3, label=row_name(method, augment),
                            color=colours[row_name(method, augment)])
        if task in CEILINGS:
            ax.axhline(CEILINGS[task][0], linestyle=":", color="black", label="full-data fine-tuning")
        ax.set_xscale("log", base=2)
        ticks = sorted({k for by_k in methods.values() for k in by_k if k > 0})
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_xlabel("K, labelled examples per class")
        ax.set_ylabel("accuracy, %")
        ax.set_title(TITLES.get(task, task))
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=120)
    os.replace(path + ".tmp.png", path)
    plt.close(fig)
    return True


def write_report(rows, out_dir):
    """results.md (a table per task) and learning-curves.png in out_dir; prints where they went."""
    tables = grouped(rows)
    text = "\n\n".join(task_table(task, methods, rows) for task, methods in tables.items()) + "\n"
    path = os.path.join(out_dir, "results.md")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(text)
    print(f"tables: {path}")
    plot = os.path.join(out_dir, "learning-curves.png")
    if plot_curves(plot, tables):
        print(f"plot: {plot}")
    else:
        print("no plot: matplotlib is not installed (pip install -r requirements-plot.txt); the tables are written")
