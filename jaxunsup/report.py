"""`jaxunsup reproduce`: runs every registered experiment and writes an HTML report.

`reproduce(workdir, mode)` runs each experiment into `workdir/<name>/` with its quick or full
preset, then writes `workdir/results.json` (every experiment's results, timing and status) and
`workdir/report/index.html` (the table ours-vs-seed and each experiment's figures). A failing
experiment is recorded as failed and the others still run.
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


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


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


def write_html(workdir: Path, entries: dict) -> Path:
    """Writes `workdir/report/index.html`; figures are linked relative to the page."""
    esc = html.escape
    rows, sections = [], []
    for name, entry in entries.items():
        results = entry.get("results", {})
        table = results.get("table") or [{"metric": entry.get("error", "—"), "ours": None}]
        for i, row in enumerate(table):
            first = f"<td rowspan='{len(table)}'>{esc(name)}</td>" if i == 0 else ""
            rows.append(
                f"<tr>{first}<td>{esc(str(row['metric']))}</td><td>{esc(_fmt(row['ours']))}</td>"
                f"<td>{esc(_fmt(row.get('seed')))}</td></tr>"
            )
        figs = []
        for fig in results.get("figures", []):
            path = workdir / name / fig
            if path.exists():
                rel = os.path.relpath(path, workdir / "report")
                figs.append(
                    f"<figure><img src='{esc(rel)}' alt='{esc(fig)}'>"
                    f"<figcaption>{esc(fig)}</figcaption></figure>"
                )
        sections.append(
            f"<section id='{esc(name)}'><h2>{esc(name)}</h2>"
            f"<p>{esc(entry['summary'])} — seed {esc(entry['seed'])}; status "
            f"<b>{esc(entry['status'])}</b> in {entry['seconds']} s; data: "
            f"{esc(str(results.get('data', '—')))}</p>{''.join(figs)}</section>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>jaxunsup reproduction report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:4px 8px}}
img{{max-width:100%}}figure{{display:inline-block;margin:.5em}}</style></head>
<body><h1>jaxunsup reproduction report</h1>
<table><tr><th>experiment</th><th>metric</th><th>ours</th><th>seed</th></tr>
{"".join(rows)}</table>
{"".join(sections)}
</body></html>
"""
    return atomic_write_bytes(workdir / "report" / "index.html", page.encode())
