"""Dependencies point one way: kernel (tenants/) <- data plane (rag/) <- interfaces (console/).

The kernel imports nothing from the data plane or the console and names the data plane nowhere
(what it needs is declared on the data plane's AppConfig, tenants/planes.py);
observability/ (used by both planes) imports neither; the data plane does not import the
console.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every absolute import under `folder`."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


@pytest.mark.parametrize(
    "folder,forbidden",
    [("tenants", {"rag", "console"}), ("observability", {"rag", "console"}), ("rag", {"console"})],
)
def test_no_import_against_the_direction(folder, forbidden):
    wrong = [(f, m) for f, m in _imports(folder) if m.split(".")[0] in forbidden]
    assert wrong == []


def test_the_import_scan_sees_imports():
    """The scan above finds function-level imports too (or the tests above could not fail)."""
    modules = {m for _, m in _imports("rag")}
    assert {"tenants.planes", "observability.health"} <= modules  # rag/apps.py, inside methods


def test_the_kernel_names_the_data_plane_nowhere():
    named = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "tenants").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\brag\b|\brag_", line)
    ]
    assert named == []


KERNEL_ALONE = """
import importlib, pkgutil, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("rag", "console"):
            raise ImportError(f"the kernel imported {name}")

sys.meta_path.insert(0, Refuse())
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "tenants"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unused"}},
    DATABASE_ROUTERS=["tenants.routers.TenantRouter"],
)
django.setup()
import tenants
names = [m.name for m in pkgutil.walk_packages(tenants.__path__, "tenants.")]
for name in names:
    importlib.import_module(name)
from tenants.planes import data_plane
try:
    data_plane()
except Exception as exc:
    print(type(exc).__name__)
print(len(names), "modules")
"""


def test_every_kernel_module_imports_without_the_data_plane():
    """Each module of tenants/ imports with rag/ and console/ uninstalled and unimportable; asked
    for the data plane, the kernel then says it is not configured (it never guesses)."""
    result = subprocess.run(
        [sys.executable, "-c", KERNEL_ALONE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "ImproperlyConfigured"
    assert int(lines[1].split()[0]) > 40
