"""What the console's pages cost to build, in process, beside their reference: the DAG factory's own parse of the
same rules folder (``load_rules_dir``), which every DAG file parse pays.

    .venv/bin/python -m bench.bench_console [N] [--out docs/benchmarks.md]

N rules files (default 200, copies of the largest shipped example under other names):

1. the folder parsed as the DAG factory parses it (reference), and as the sources page reads it — first request
   (every file validated) and later ones (validated again only when a file changed);
2. the sources page's HTML for N rows;
3. the rules editor's form generated from the model and rendered, for the largest rules file.

The whole page through Airflow's API server (queries included) is measured by the browser test
(``tests/test_console_browser.py``, ``test-artifacts/console-timings.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from bench.bench_dag import publish  # noqa: E402


def timed(fn, repeat: int = 7) -> float:
    """The median of ``repeat`` timings of ``fn()``, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_benchmark(n: int) -> dict[str, float]:
    import yaml

    from usersync.rules.form import rules_form
    from usersync.rules.loader import load_rules, load_rules_dir
    from usersync_airflow.ui import rules_files
    from usersync_airflow.ui.editor_page import EditorView, editor_page
    from usersync_airflow.ui.source_rows import SourceRow
    from usersync_airflow.ui.sources_page import sources_page

    examples = REPO / "include" / "rules"
    largest = max(examples.glob("*.yaml"), key=lambda p: p.stat().st_size)
    folder = Path(tempfile.mkdtemp(prefix="usersync-bench-console-"))
    configured = os.environ.get("USERSYNC_RULES_DIR")
    try:
        text = largest.read_text()
        name = yaml.safe_load(text)["source"]["name"]
        for i in range(n):
            (folder / f"site{i:03d}.yaml").write_text(text.replace(f"name: {name}", f"name: site{i:03d}", 1))
        os.environ["USERSYNC_RULES_DIR"] = str(folder)
        import usersync_airflow.dag.dag_factory  # noqa: F401 - loaded in the API server already (it imports Airflow)

        out = {"reference": timed(lambda: load_rules_dir(folder), 3)}
        rules_files._parsed.clear()
        started = time.perf_counter()
        live = rules_files.live_rules()
        out["first"] = time.perf_counter() - started
        assert len(live) == n
        out["later"] = timed(rules_files.live_rules)
        rows = [SourceRow(s, r.source.type, r.source.connection_id(), d, p.name, "daily 02:30 UTC", True, False,
                          paused=False, parsed=True, may_trigger=True, may_edit=True,
                          last_run={"run_id": "scheduled__2026-12-03T02:30:00+00:00", "status": "SUCCESS",
                                    "counts": {"inserted": 3, "updated": 12}, "started": None})
                for s, (r, p, d) in live.items()]
        tokens = {r.name: "0" * 64 for r in rows}
        page = sources_page(rows, tokens, True, {})
        assert page.count('<tr class="source"') == n
        out["sources_html"] = timed(lambda: sources_page(rows, tokens, True, {}))
        rules = load_rules(largest)

        def editor() -> str:
            form = rules_form(rules.model_dump(mode="json"))
            return editor_page(EditorView(name, largest.name, form, "live", "", "0" * 64, True, True, True))

        out["editor_first"] = timed(editor, 1)
        out["editor"] = timed(editor)
        out["largest"] = largest.name  # type: ignore[assignment]
        out["largest_bytes"] = largest.stat().st_size
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if configured is None:
            os.environ.pop("USERSYNC_RULES_DIR", None)
        else:
            os.environ["USERSYNC_RULES_DIR"] = configured


def render(n: int, r: dict) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""
## Console: the sources page with {n} sources, the editor of the largest rules file — measured {when}

In process, one machine ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), `bench.bench_console`.
The rules folder holds {n} copies of `{r["largest"]}` ({r["largest_bytes"]:,} bytes, the largest shipped example).

| step | seconds |
| --- | ---: |
| reference: the folder parsed as the DAG factory parses it (`load_rules_dir`) | {r["reference"]:.3f} |
| sources page, first request: every file validated | {r["first"]:.3f} |
| sources page, later requests: files validated again only when changed | {r["later"]:.4f} |
| sources page's HTML, {n} rows | {r["sources_html"]:.4f} |
| editor: form generated from the model and rendered, first time (reads the model's comments) | {r["editor_first"]:.4f} |
| editor: form generated and rendered, later | {r["editor"]:.4f} |
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    publish(render(args.n, run_benchmark(args.n)), args.out)


if __name__ == "__main__":
    main()
