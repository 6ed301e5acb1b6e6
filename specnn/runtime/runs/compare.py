"""Looking at finished runs side by side: ``specnn runs``, ``specnn show`` and ``specnn diff``.

Everything here reads a run folder's files (``manifest.json``, ``metrics.jsonl``, ``spec.yaml``)
and changes nothing. A run from before manifests still lists: its status is read from its files
(weights: finished; a checkpoint only: interrupted; neither: failed).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from specnn.errors import Problem, RunError
from specnn.runtime.files import CHECKPOINT_DIR, LAST, MANIFEST_FILE, SPEC_FILE, WEIGHTS_FILE, read_metrics
from specnn.runtime.train.manifest import read_manifest

HASH_SHOWN = 12  # characters of a sha256 shown in tables


@dataclass
class RunSummary:
    """One run folder, as the comparison commands see it.

    Attributes:
        path: the run folder.
        name: the spec's name.
        started: when the first session started (ISO 8601), when known.
        spec_sha256: the resolved spec's hash (from the manifest), when known.
        epochs: epochs in ``metrics.jsonl``.
        best: ``(monitored key, best value, its epoch)`` over the epochs, when any.
        status: ``finished``, ``interrupted``, ``failed`` or ``running`` (or killed while running).
        final: the last epoch's record.
        manifest: ``manifest.json``'s contents, or None.
    """

    path: Path
    name: str
    started: Optional[str]
    spec_sha256: Optional[str]
    epochs: int
    best: Optional[tuple[str, float, int]]
    status: str
    final: dict[str, Any] = field(default_factory=dict)
    manifest: Optional[dict[str, Any]] = None


def summarize_run(folder: Union[str, Path]) -> RunSummary:
    """Read a run folder's summary.

    Raises:
        RunError: ``folder`` is not a run folder (no ``manifest.json`` and no ``spec.yaml``).
    """
    path = Path(folder)
    if not is_run(path):
        raise RunError([Problem("run", "not a run folder: no manifest.json or spec.yaml", file=str(path),
                                hint="give a folder `specnn train` wrote")])
    manifest = read_manifest(path)
    try:
        records = read_metrics(path, torn_tail=True)
    except RunError:
        records = []
    monitor = (manifest or {}).get("monitor") or _default_monitor(records)
    return RunSummary(
        path=path,
        name=(manifest or {}).get("name") or _spec_name(path),
        started=_first_start(manifest) or None,
        spec_sha256=((manifest or {}).get("spec") or {}).get("resolved_sha256"),
        epochs=len(records),
        best=_best(records, monitor["name"], monitor["mode"]) if monitor else None,
        status=(manifest or {}).get("status") or _status_from_files(path),
        final=records[-1] if records else {},
        manifest=manifest,
    )


def is_run(folder: Path) -> bool:
    return (folder / MANIFEST_FILE).is_file() or (folder / SPEC_FILE).is_file()


def find_runs(directory: Union[str, Path] = "runs") -> list[RunSummary]:
    """Every run folder in ``directory`` (and ``directory`` itself when it is one), oldest first."""
    root = Path(directory)
    if not root.is_dir():
        raise RunError([Problem("run", "no such folder", file=str(root), hint="train a spec first: runs go to runs/")])
    folders = ([root] if is_run(root) else []) + sorted(p for p in root.iterdir() if p.is_dir() and is_run(p))
    runs = [summarize_run(p) for p in folders]
    return sorted(runs, key=lambda r: (r.started or "", str(r.path)))


# ---------------------------------------------------------------------------------------------
# text


def format_runs(runs: list[RunSummary]) -> str:
    """The ``specnn runs`` table: one line per run."""
    if not runs:
        return "no runs"
    rows = [("run", "name", "started", "spec", "epochs", "best", "status")]
    for run in runs:
        best = f"{run.best[0]} {_number(run.best[1])}" if run.best else "-"
        rows.append((str(run.path), run.name, (run.started or "-").replace("T", " ")[:19],
                     (run.spec_sha256 or "-")[:HASH_SHOWN], str(run.epochs), best, run.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def format_show(run: RunSummary) -> str:
    """``specnn show``: the manifest in words, then the final and best epoch values."""
    manifest = run.manifest or {}
    lines = [f"run            {run.path}", f"name           {run.name}", f"status         {run.status}"]
    spec = manifest.get("spec") or {}
    if spec:
        lines.append(f"spec           {spec.get('file') or '-'}  sha256 {spec.get('sha256') or '-'}")
        lines.append(f"resolved spec  sha256 {spec.get('resolved_sha256')}")
    for item in manifest.get("data", []):
        lines.append(f"data           {item['path']}  sha256 {item['sha256']}  ({item['bytes']} bytes)")
    if "seed" in manifest:
        lines.append(f"seed           {manifest['seed']}")
    if manifest.get("versions"):
        lines.append("versions       " + ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))
    device = manifest.get("device")
    if device:
        lines.append(f"device         {device['type']} ({device['name']}), {device['threads']} thread(s), "
                     f"{device.get('platform', '')}".rstrip(", "))
    if manifest.get("deterministic"):
        lines.append("deterministic  " + ", ".join(f"{k} {v}" for k, v in manifest["deterministic"].items()))
    if "git" in manifest:
        git = manifest["git"]
        lines.append("git            " + (f"{git['commit']}{' (dirty)' if git.get('dirty') else ''}" if git else "-"))
    for number, session in enumerate(manifest.get("sessions", []), start=1):
        lines.append(f"session {number:<6} {session['started']} .. {session.get('ended') or '-'}  {session['status']}, "
                     f"from epoch {session.get('from_epoch', 0)}: {' '.join(session.get('command', []))}")
    if not manifest:
        lines.append("manifest       none (a run from before manifests)")
    if run.final:
        lines.append(f"final (epoch {run.final.get('epoch')})")
        lines += [f"  {key:<22} {_number(value)}" for key, value in run.final.items() if key != "epoch"]
    if run.best:
        lines.append(f"best           {run.best[0]} {_number(run.best[1])} (epoch {run.best[2]})")
    return "\n".join(lines)


def show_json(run: RunSummary) -> dict[str, Any]:
    """``specnn show --json``: the manifest with the final record and the best value."""
    best = {"monitor": run.best[0], "value": run.best[1], "epoch": run.best[2]} if run.best else None
    return {"run": str(run.path), "status": run.status, "epochs": run.epochs, "manifest": run.manifest,
            "final": run.final, "best": best}


# ---------------------------------------------------------------------------------------------
# diff


def diff_runs(first: Union[str, Path], second: Union[str, Path]) -> str:
    """What differs between two runs: resolved spec, data files, versions, machine, final values.

    Sections that agree are one line saying so, so a reader sees at once where to look.
    """
    a, b = summarize_run(first), summarize_run(second)
    out = [f"A: {a.path}", f"B: {b.path}", ""]
    out += _spec_diff(a, b)
    out += _data_diff(a.manifest or {}, b.manifest or {})
    for key, title in (("versions", "versions"), ("device", "device"), ("deterministic", "determinism")):
        out += _mapping_diff(title, (a.manifest or {}).get(key) or {}, (b.manifest or {}).get(key) or {})
    out += _git_diff(a.manifest or {}, b.manifest or {})
    out += _final_diff(a, b)
    return "\n".join(out).rstrip() + "\n"


def _spec_diff(a: RunSummary, b: RunSummary) -> list[str]:
    text_a, text_b = _spec_text(a.path), _spec_text(b.path)
    if text_a == text_b:
        return [f"spec: same{_sha_note(a.spec_sha256)}"]
    diff = difflib.unified_diff(text_a.splitlines(), text_b.splitlines(), f"A/{SPEC_FILE}", f"B/{SPEC_FILE}",
                                lineterm="", n=1)
    return ["spec: differs (resolved specs)", *[f"  {line}" for line in diff]]


def _data_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    files_a = {Path(d["path"]).name: d for d in a.get("data", [])}
    files_b = {Path(d["path"]).name: d for d in b.get("data", [])}
    if not files_a and not files_b:
        return ["data files: none (the data is generated or bundled)"]
    rows = []
    for name in dict.fromkeys([*files_a, *files_b]):
        da, db = files_a.get(name), files_b.get(name)
        if da and db and da["sha256"] == db["sha256"]:
            continue
        rows.append(f"  {name}: A {_file_note(da)}  B {_file_note(db)}")
    if not rows:
        return ["data files: same content (" + ", ".join(files_a) + ")"]
    return ["data files: differ", *rows]


def _mapping_diff(title: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    rows = [f"  {key}: A {a.get(key, '-')}  B {b.get(key, '-')}"
            for key in dict.fromkeys([*a, *b]) if a.get(key) != b.get(key)]
    return [f"{title}: differ", *rows] if rows else [f"{title}: same"]


def _git_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    ga, gb = a.get("git"), b.get("git")
    if ga == gb:
        return [f"git: same{' (' + ga['commit'][:HASH_SHOWN] + ')' if ga else ' (none)'}"]
    note = lambda g: f"{g['commit'][:HASH_SHOWN]}{' dirty' if g.get('dirty') else ''}" if g else "-"  # noqa: E731
    return ["git: differs", f"  A {note(ga)}  B {note(gb)}"]


def _final_diff(a: RunSummary, b: RunSummary) -> list[str]:
    keys = [k for k in dict.fromkeys([*a.final, *b.final]) if k not in ("seconds",)]
    if not keys:
        return ["final values: none"]
    rows = [("final values", f"A (epoch {a.final.get('epoch', '-')})", f"B (epoch {b.final.get('epoch', '-')})", "B - A")]
    for key in keys:
        if key == "epoch":
            continue
        va, vb = a.final.get(key), b.final.get(key)
        change = _number(vb - va) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else ""
        rows.append((f"  {key}", _number(va), _number(vb), change))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


# ---------------------------------------------------------------------------------------------
# helpers


def _spec_text(folder: Path) -> str:
    path = folder / SPEC_FILE
    if not path.is_file():
        return ""
    return "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))


def _spec_name(folder: Path) -> str:
    for line in _spec_text(folder).splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return folder.name


def _first_start(manifest: Optional[dict[str, Any]]) -> Optional[str]:
    sessions = (manifest or {}).get("sessions") or []
    return sessions[0].get("started") if sessions else None


def _default_monitor(records: list[dict[str, Any]]) -> Optional[dict[str, str]]:
    if not records:
        return None
    return {"name": "val_loss" if "val_loss" in records[0] else "train_loss", "mode": "min"}


def _best(records: list[dict[str, Any]], key: str, mode: str) -> Optional[tuple[str, float, int]]:
    found = [(r[key], r.get("epoch", i + 1)) for i, r in enumerate(records)
             if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
    if not found:
        return None
    value, epoch = (min if mode == "min" else max)(found, key=lambda pair: pair[0])
    return key, value, epoch


def _status_from_files(folder: Path) -> str:
    if (folder / WEIGHTS_FILE).is_file():
        return "finished"
    return "interrupted" if (folder / CHECKPOINT_DIR / LAST).is_file() else "failed"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def _sha_note(sha: Optional[str]) -> str:
    return f" (sha256 {sha[:HASH_SHOWN]})" if sha else ""


def _file_note(item: Optional[dict[str, Any]]) -> str:
    return f"sha256 {item['sha256'][:HASH_SHOWN]} ({item['bytes']} bytes)" if item else "-"
