"""``python -m mlsp_pipelines.tracking urls``: where to look in the MLflow UI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlsp_pipelines.tracking.store import open_store, resolve_tracking_uri


def ui_urls(uri: str, base_url: str) -> list[tuple[str, str, str | None]]:
    """``(experiment, URL of its runs view, URL comparing the models of its latest run)`` for
    every experiment with runs. MLflow 3's UI opens in GenAI mode unless the URL asks for
    ``workflowType=machine_learning``."""
    from urllib.parse import quote

    client = open_store(uri)
    base = base_url.rstrip("/")
    out = []
    for exp in sorted(client.search_experiments(), key=lambda e: e.name):
        latest = client.search_runs([exp.experiment_id], "tags.`mlsp.kind` = 'model'", max_results=1,
                                    order_by=["attributes.start_time DESC"])
        if exp.name == "Default" and not client.search_runs([exp.experiment_id], max_results=1):
            continue
        compare = None
        if latest:
            parent = latest[0].data.tags.get("mlflow.parentRunId", "")
            models = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}' "
                                        "and tags.`mlsp.kind` = 'model'")
            ids = json.dumps([r.info.run_id for r in sorted(models, key=lambda r: r.info.start_time)])
            compare = f"{base}/#/compare-runs?runs={quote(ids)}&experiments={quote(json.dumps([exp.experiment_id]))}"
        out.append((exp.name, f"{base}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning", compare))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m mlsp_pipelines.tracking urls [--port 5000]``: print where to look."""
    import argparse

    from mlsp_pipelines.config import project_root

    ap = argparse.ArgumentParser(description="Print the MLflow UI links of this project's experiments.")
    ap.add_argument("command", choices=["urls"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args(argv)
    root = project_root()
    uri = resolve_tracking_uri(_configured_uri(root), root)
    base = f"http://{args.host}:{args.port}"
    urls = ui_urls(uri, base)
    # the command's product is this text on stdout (`make mlflow-ui` shows it before the server starts)
    lines = [f"MLflow UI for {uri}"]
    if not urls:
        lines.append(f"  no runs yet: `make run` (or kedro run --pipeline=asc), then open {base}/#/experiments"
                     "?workflowType=machine_learning")
    for name, url, compare in urls:
        lines.append(f"  {name:<24} runs:    {url}")
        if compare:
            lines.append(f"  {'':<24} compare: {compare}  (the models of the latest run)")
    lines.append("Compare models: in the runs view expand a run (+), tick its model runs, press 'Compare'; on the "
                 "compare page pick confusion_matrix.png or learning_curves.png under Artifacts to see them side by side.")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _configured_uri(root: Path) -> str | None:
    import yaml

    path = root / "conf" / "base" / "mlflow.yml"
    try:
        return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("tracking_uri")
    except OSError:
        return None

