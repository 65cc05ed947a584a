"""Run by ``test_packaging.py`` with the Python of a venv that holds Airflow, the wheel, its extras and their
declared dependencies only; standard library only, since nothing else can be assumed there.

Every module of the package is imported, and every module it imports (at the top, or lazily inside a function)
must come from the standard library, from the package itself, or from a distribution the package declares for
that module: a base requirement, or one of the extra whose subpackage holds it (``testing``). One that Airflow
happens to bring along does not count, since a later Airflow may stop bringing it; nor does another extra's, so
one venv with every extra installed checks each module against its own requirements. Prints one JSON line:
``{"checked": [module, ...], "problems": [text, ...]}``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as metadata
import json
import pkgutil
import re
import sys
import traceback
from pathlib import Path

DISTRIBUTION = "airflow-provider-runcomfy"
PACKAGE = "airflow_provider_runcomfy"
EXTRA_SUBPACKAGES = {"testing": f"{PACKAGE}.testing"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(spec: str) -> tuple[str, str | None]:
    """``(name, extra)`` of a ``Requires-Dist`` line; the extra is None for a base requirement."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec).group()
    extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", spec)
    return canonical(name), extra.group(1) if extra else None


def declared(extra: str | None) -> set[str]:
    """The distributions the package requires, plus those of ``extra``; a meta-distribution that ships no module
    of its own (``apache-airflow``: Airflow core and the task SDK) stands for the ones it requires."""
    names = {
        name for name, wanted in map(requirement, metadata.requires(DISTRIBUTION) or []) if wanted in (None, extra)
    }
    provided, todo = {canonical(DISTRIBUTION)}, list(names)
    while todo:
        name = todo.pop()
        if name in provided:
            continue
        provided.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:  # a requirement whose marker excludes this Python
            continue
        if not any(file.suffix == ".py" for file in dist.files or []):
            todo += [name for name, wanted in map(requirement, dist.requires or []) if wanted is None]
    return provided


def module_index() -> dict[str, set[str]]:
    """Every installed module (dotted name) and the distributions whose files hold it."""
    index: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for file in dist.files or []:
            if file.suffix not in (".py", ".so") or file.parts[0] == ".." or ".dist-info" in file.parts[0]:
                continue
            module = [*file.parts[:-1], file.name.split(".")[0]]
            if module[-1] == "__init__":
                module.pop()
            index.setdefault(".".join(module), set()).add(canonical(dist.metadata["Name"]))
    return index


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def providers(module: str, index: dict[str, set[str]]) -> set[str]:
    parts = module.split(".")
    while parts and ".".join(parts) not in index:
        parts.pop()
    return index.get(".".join(parts), set())


def extra_of(module: str) -> str | None:
    """The extra a module of the package needs, if it lives in an extra's subpackage."""
    for extra, subpackage in EXTRA_SUBPACKAGES.items():
        if module == subpackage or module.startswith(f"{subpackage}."):
            return extra
    return None


def main() -> dict[str, list[str]]:
    index, allowed = module_index(), {extra: declared(extra) for extra in [None, *EXTRA_SUBPACKAGES]}
    problems: list[str] = []
    package = importlib.import_module(PACKAGE)
    walked = pkgutil.walk_packages(package.__path__, f"{PACKAGE}.", lambda name: problems.append(f"{name} fails"))
    names = [PACKAGE, *(module.name for module in walked)]
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:
            problems.append(f"{name} does not import:\n{traceback.format_exc(limit=-3)}")
            continue
        for line, used in imported_modules(Path(module.__file__)):
            if used.partition(".")[0] in sys.stdlib_module_names or used.startswith(PACKAGE):
                continue
            found = providers(used, index)
            if not found & allowed[extra_of(name)]:
                where = ", ".join(sorted(found)) or "no installed distribution"
                problems.append(f"{name} (line {line}) imports {used}, from {where}: not declared for it")
    return {"checked": names, "problems": problems}


if __name__ == "__main__":
    print(json.dumps(main()))
