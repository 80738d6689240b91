"""`jaxunsup reproduce`: runs every registered experiment and writes an HTML report.

`reproduce(workdir, mode)` runs each experiment into `workdir/<name>/` with its quick or full
preset, then writes `workdir/results.json` (every experiment's results, timing and status) and
`workdir/report/index.html`: a summary table (experiment, status, wall time, headline metric,
the seed's number), every metric row ours-vs-seed, then each experiment's figures inline (GIFs
animate), with a note wherever a result needs one (`report_notes`). The page loads nothing from
the network: no scripts, fonts or styles from elsewhere, figures by paths relative to it. A
failing experiment is recorded as failed and the others still run.
"""

from __future__ import annotations

import html
import os
import sys
import time
import traceback
from pathlib import Path

from jaxunsup.files import atomic_write_bytes, user_message, write_json
from jaxunsup.registry import EXPERIMENTS
from jaxunsup.report_notes import notes_for

esc = html.escape

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:4px 8px;
vertical-align:top}th{background:#f0f0f0}img{max-width:100%}figure{display:inline-block;
margin:.5em;vertical-align:top}.ok{color:#070}.failed{color:#b00;font-weight:bold}
.note{background:#fff8e0;border-left:4px solid #e0a800;padding:.5em 1em}
code{background:#f4f4f4;padding:0 .2em}"""


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _wall(seconds: float) -> str:
    """142.3 → "2 min 22 s"; under a minute, "41.2 s"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def reproduce(
    workdir: str | os.PathLike, mode: str = "quick", only: tuple[str, ...] | None = None
) -> dict:
    """Runs the experiments (all, or `only`) with the `mode` preset ("quick" or "full")."""
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}")
    names = list(only) if only else list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    workdir = Path(workdir)
    entries = {}
    for name in names:
        exp = EXPERIMENTS[name]
        print(f"== {name} ({mode}) ==", file=sys.stderr)
        start = time.perf_counter()
        entry = {"seed": exp.seed, "summary": exp.summary, "mode": mode}
        try:
            entry["results"] = exp.run(exp.make_config(mode), workdir / name)
            entry["status"] = "ok"
        except Exception as err:  # one failure must not lose the others' results
            entry["status"] = "failed"
            entry["error"] = f"{type(err).__name__}: {err}"
            if isinstance(err, ValueError | OSError | ImportError):  # the user's to fix
                print(f"jaxunsup: {name} failed: {user_message(err)}", file=sys.stderr)
            else:  # a bug: its traceback is what a report needs
                traceback.print_exc()
        entry["seconds"] = round(time.perf_counter() - start, 2)
        entries[name] = entry
    write_json(workdir / "results.json", entries)
    page = write_html(workdir, entries)
    return {"report": page, "failed": [n for n, e in entries.items() if e["status"] != "ok"]}


def _table_rows(entry: dict) -> list[dict]:
    """The experiment's metric rows, or one row naming its error."""
    table = entry.get("results", {}).get("table")
    return table or [{"metric": entry.get("error", "no results"), "ours": None}]


# The summary's headline: the metric row whose name starts so (else the experiment's first row).
HEADLINES = {
    "ae-stacked": "test MSE",
    "ae-conv": "test MSE per seed",
    "blobs-classifier": "test accuracy",
    "gan-mlp": "classifier-feature FD",
    "dcgan": "classifier-feature FD",
    "gan-mnist-simple": "randn:",
}


def _headline(name: str, entry: dict) -> dict:
    rows = _table_rows(entry)
    wanted = HEADLINES.get(name)
    return next((r for r in rows if wanted and str(r["metric"]).startswith(wanted)), rows[0])


def _summary_row(name: str, entry: dict, notes: list[tuple[str, str]]) -> str:
    """Experiment | status (and the notes' short forms) | wall time | headline | seed's number."""
    head = _headline(name, entry)
    status = f"<span class='{esc(entry['status'])}'>{esc(entry['status'])}</span>"
    status += "".join(f"<br>{esc(short)}" for short, _ in notes)
    metric = esc(str(head["metric"]))
    if "results" in entry:
        metric += f": <b>{esc(_fmt(head['ours']))}</b>"
    return (
        f"<tr><td><a href='#{esc(name)}'>{esc(name)}</a></td><td>{status}</td>"
        f"<td>{esc(_wall(entry['seconds']))}</td><td>{metric}</td>"
        f"<td>{esc(_fmt(head.get('seed')))}</td></tr>"
    )


def _metric_rows(name: str, entry: dict) -> str:
    table = _table_rows(entry)
    rows = []
    for i, row in enumerate(table):
        first = f"<td rowspan='{len(table)}'>{esc(name)}</td>" if i == 0 else ""
        rows.append(
            f"<tr>{first}<td>{esc(str(row['metric']))}</td><td>{esc(_fmt(row['ours']))}</td>"
            f"<td>{esc(_fmt(row.get('seed')))}</td></tr>"
        )
    return "".join(rows)


def _figures(workdir: Path, name: str, results: dict) -> str:
    """Each existing figure as an <img> by its path relative to the report's folder."""
    figs = []
    for fig in results.get("figures", []):
        path = workdir / name / fig
        if path.is_file():
            rel = Path(os.path.relpath(path, workdir / "report")).as_posix()
            figs.append(
                f"<figure><img src='{esc(rel)}' alt='{esc(name)}: {esc(fig)}'>"
                f"<figcaption>{esc(fig)}</figcaption></figure>"
            )
    return "".join(figs)


def _section(workdir: Path, name: str, entry: dict, notes: list[tuple[str, str]]) -> str:
    results = entry.get("results", {})
    notes_html = "".join(f"<p class='note'>{text}</p>" for _, text in notes)
    return (
        f"<section id='{esc(name)}'><h2>{esc(name)}</h2>"
        f"<p>{esc(entry['summary'])} — seed {esc(entry['seed'])}; status "
        f"<b class='{esc(entry['status'])}'>{esc(entry['status'])}</b> in "
        f"{esc(_wall(entry['seconds']))}; data: {esc(str(results.get('data', '—')))}</p>"
        f"{notes_html}{_figures(workdir, name, results)}</section>"
    )


def write_html(workdir: str | os.PathLike, entries: dict) -> Path:
    """Writes `workdir/report/index.html` for `entries` (`reproduce`'s results.json); figures
    are linked relative to the page, so the folder can be served or opened as files."""
    workdir = Path(workdir)
    notes = {name: notes_for(name, entry) for name, entry in entries.items()}
    summary = "".join(_summary_row(n, e, notes[n]) for n, e in entries.items())
    metrics = "".join(_metric_rows(n, e) for n, e in entries.items())
    sections = "".join(_section(workdir, n, e, notes[n]) for n, e in entries.items())
    total = sum(e["seconds"] for e in entries.values())
    failed = sum(e["status"] != "ok" for e in entries.values())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,">
<title>jaxunsup reproduction report</title>
<style>{STYLE}</style></head>
<body><h1>jaxunsup reproduction report</h1>
<p>{len(entries)} experiments, {failed} failed, {esc(_wall(total))} in all.</p>
<h2>Summary</h2>
<table><tr><th>experiment</th><th>status</th><th>wall time</th><th>headline metric (ours)</th>
<th>seed's number</th></tr>
{summary}</table>
<h2>Every metric</h2>
<table><tr><th>experiment</th><th>metric</th><th>ours</th><th>seed</th></tr>
{metrics}</table>
{sections}
</body></html>
"""
    return atomic_write_bytes(workdir / "report" / "index.html", page.encode())
