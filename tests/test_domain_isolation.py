"""The domain package never imports Airflow: it must stay usable and testable on its own."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.support.repo import REPO

DOMAIN = REPO / "plugins" / "usersync"


def test_no_module_of_the_domain_package_imports_airflow():
    offenders = []
    for path in DOMAIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "airflow"]
    assert offenders == []


def test_importing_every_domain_module_loads_no_airflow():
    modules = sorted(
        "usersync." + ".".join(p.relative_to(DOMAIN).with_suffix("").parts)
        for p in DOMAIN.rglob("*.py")
        # Alembic runs the migration scripts itself (env.py needs its context); the AST test above covers them
        if p.name not in {"__init__.py", "__main__.py"} and "migrations" not in p.relative_to(DOMAIN).parts
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
        "print(len(bad)); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path("/"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(modules) >= 10
