"""Bad input as a user meets it: what a real ``kedro run --env=generic`` says for each case.

Every case builds a small folder of 8 kHz clips (three classes, a ``labels.csv`` with
``filename,label,fold``), damages it in one way (or passes a bad parameter) and runs

    kedro run --pipelines=asc --env=generic --params data_dir=<folder>,<quick settings>[,<case's>]

in a fresh copy of the project. The table says whether the run stopped, its last line (what
the user reads first) and what ``data_quality.json`` counted, so a silent pass shows as one.

    python benchmarks/bad_inputs.py [--cases empty-label one-long-clip]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from _project import project_copy  # benchmarks/_project.py

SR = 8000
QUICK = "asc.architectures=[mlp],asc.train.epochs=1,asc.features.workers=1"
LABELS = ("dog", "rain", "siren")


def _tone(n: int, k: int) -> np.ndarray:
    t = np.arange(n) / SR
    rng = np.random.default_rng(k)
    return (0.3 * np.sin(2 * np.pi * (300 + 40 * (k % 3)) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def _clean(root: Path, n_per_class: int = 8) -> list[list[str]]:
    """The clean folder: 3 classes x ``n_per_class`` one-second clips, folds 1-4; returns the CSV rows."""
    (root / "audio").mkdir(parents=True)
    rows = [["filename", "label", "fold"]]
    for k in range(3 * n_per_class):
        name = f"c{k:02d}.wav"
        sf.write(root / "audio" / name, _tone(SR, k), SR, subtype="PCM_16")
        rows.append([name, LABELS[k % 3], str(1 + (k // 3) % 4)])
    return rows


def _write(root: Path, rows: list[list[str]], name: str = "labels.csv") -> None:
    (root / name).write_text("\n".join(",".join(r) for r in rows) + "\n")


def _case(edit: Callable[[Path, list[list[str]]], None] | None = None, params: str = "") -> Callable[[Path], str]:
    def build(root: Path) -> str:
        rows = _clean(root)
        if edit is not None:
            edit(root, rows)
        if not getattr(edit, "no_csv", False):
            _write(root, rows)
        return params
    return build


def _set(row: int, col: int, value: str) -> Callable[[Path, list[list[str]]], None]:
    def edit(root: Path, rows: list[list[str]]) -> None:
        rows[row][col] = value
    return edit


def _audio(name: str, data: bytes | None = None, samples: np.ndarray | None = None, subtype: str = "PCM_16",
           sr: int = SR) -> Callable[[Path, list[list[str]]], None]:
    def edit(root: Path, rows: list[list[str]]) -> None:
        path = root / "audio" / name
        if data is not None:
            path.write_bytes(data)
        else:
            sf.write(path, samples, sr, subtype=subtype)
    return edit


def _truncate(name: str, keep: int) -> Callable[[Path, list[list[str]]], None]:
    def edit(root: Path, rows: list[list[str]]) -> None:
        path = root / "audio" / name
        path.write_bytes(path.read_bytes()[:keep])
    return edit


def _no_csv(root: Path, rows: list[list[str]]) -> None:
    pass


_no_csv.no_csv = True  # type: ignore[attr-defined]


def _two_csvs(root: Path, rows: list[list[str]]) -> None:
    _write(root, rows, "other.csv")


def _missing_file(root: Path, rows: list[list[str]]) -> None:
    (root / "audio" / rows[5][0]).unlink()


def _unlisted(root: Path, rows: list[list[str]]) -> None:
    sf.write(root / "audio" / "stray.wav", _tone(SR, 99), SR)


def _duplicate_row(root: Path, rows: list[list[str]]) -> None:
    rows.append(list(rows[3]))


def _conflicting_row(root: Path, rows: list[list[str]]) -> None:
    rows.append([rows[3][0], "rain" if rows[3][1] != "rain" else "dog", rows[3][2]])


def _no_label_column(root: Path, rows: list[list[str]]) -> None:
    rows[0][1] = "category"


def _one_clip_class(root: Path, rows: list[list[str]]) -> None:
    rows[1][1] = "thunder"


def _stereo_44k(root: Path, rows: list[list[str]]) -> None:
    t = np.arange(44100) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 300 * t)] * 2, axis=1).astype(np.float32)
    sf.write(root / "audio" / rows[1][0], stereo, 44100)


CASES: dict[str, Callable[[Path], str]] = {
    "clean": _case(),
    # labels and folds (the four new probes: empty label, space variant, non-integer fold, one long clip)
    "empty-label": _case(_set(4, 1, "")),
    "space-variant-label": _case(_set(4, 1, "dog ")),
    "case-variant-label": _case(_set(4, 1, "Dog")),
    "non-integer-fold": _case(_set(4, 2, "three")),
    "one-long-clip": _case(_audio("c00.wav", samples=_tone(600 * SR, 0))),
    "ten-sample-clip": _case(_audio("c00.wav", samples=_tone(10, 0))),
    "one-clip-class": _case(_one_clip_class),
    # files
    "truncated-wav": _case(_truncate("c03.wav", 2000)),
    "header-only-wav": _case(_truncate("c03.wav", 44)),
    "zero-byte-file": _case(_audio("c03.wav", data=b"")),
    "text-as-wav": _case(_audio("c03.wav", data=b"this is not audio\n" * 50)),
    "nan-samples": _case(_audio("c03.wav", samples=np.full(SR, np.nan, np.float32), subtype="FLOAT")),
    "silent-clip": _case(_audio("c03.wav", samples=np.zeros(SR, np.float32))),
    "stereo-44k-clip": _case(_stereo_44k),
    "truncated-wav-skip": _case(_truncate("c03.wav", 2000), "asc.data.on_bad_file=skip"),
    # metadata
    "listed-file-missing": _case(_missing_file),
    "unlisted-file": _case(_unlisted),
    "duplicate-row": _case(_duplicate_row),
    "conflicting-duplicate-row": _case(_conflicting_row),
    "no-label-column": _case(_no_label_column),
    "two-csvs": _case(_two_csvs),
    "no-csv": _case(_no_csv),
    # parameters and paths
    "data-dir-missing": lambda root: "data_dir_override=/nonexistent/folder",
    "bad-parameter-value": _case(params="asc.features.n_mels=-5"),
    "unknown-architecture": _case(params="asc.architectures=[resnet9000]"),
    "misspelt-parameter-key": _case(params="asc.train.epoch=3"),
}


def run_case(name: str, tmp: Path) -> dict[str, object]:
    project = project_copy(tmp / name / "project")
    data = tmp / name / "data"
    data.mkdir(parents=True)
    extra = CASES[name](data)
    data_dir = str(data)
    if extra.startswith("data_dir_override="):
        data_dir, extra = extra.split("=", 1)[1], ""
    params = ",".join(p for p in (f"data_dir={data_dir}", QUICK, extra) if p)
    env = {k: v for k, v in os.environ.items() if k != "KEDRO_ENV"}
    env.update(MLSP_PROGRESS="0", KEDRO_DISABLE_TELEMETRY="1", MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipelines=asc", "--env=generic", "--params", params],
                          cwd=project, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    out = (proc.stdout + proc.stderr).strip().splitlines()
    last = next((line for line in reversed(out) if line.strip()), "")
    warnings = [line for line in out if " WARNING " in line and "mlsp_pipelines" in line]
    quality: dict[str, object] = {}
    for q in (project / "data" / "08_reporting").rglob("data_quality.json"):
        report = json.loads(q.read_text())
        quality = {k: v for k, v in report.items() if (k.startswith("n_") and v) or "clip" in k or "outlier" in k
                   or "padding" in k}
    return {"case": name, "exit": proc.returncode, "seconds": round(seconds, 1), "last": last[:400],
            "warnings": [w[:300] for w in warnings[:3]], "quality": quality}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        for name in args.cases:
            row = run_case(name, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| case | exit | what the user reads last | warnings / counted |\n| --- | --- | --- | --- |")
    for r in rows:
        note = "; ".join(r["warnings"]) or (json.dumps(r["quality"]) if r["quality"] else "")
        print(f"| {r['case']} | {r['exit']} | {str(r['last']).replace('|', '/')} | {note.replace('|', '/')[:300]} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
