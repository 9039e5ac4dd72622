"""The dependency rule of docs/architecture.md, checked by walking every import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "opendispatch"
ALLOWED_THIRD_PARTY_IN_DOMAIN = {"attrs"}
FORBIDDEN_EVERYWHERE_BUT_DISCORD = {"asyncio"}


def _imports(path: Path) -> list[str]:
    """Absolute module names imported by `path` (relative imports resolved)."""
    module_parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if module_parts[-1] == "__init__":
        module_parts = module_parts[:-1]
        package_parts = module_parts
    else:
        package_parts = module_parts[:-1]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                prefix = ".".join(base)
                names.append(f"{prefix}.{node.module}" if node.module else prefix)
            else:
                names.append(node.module or "")
    return names


def _files(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("domain"), ids=lambda p: p.name)
def test_domain_imports_only_stdlib_attrs_and_itself(path: Path) -> None:
    import sys

    for name in _imports(path):
        top = name.split(".")[0]
        if top == "opendispatch":
            assert name.startswith("opendispatch.domain"), f"{path.name} imports {name}"
        else:
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY_IN_DOMAIN, f"{path.name} imports {name}"
            assert top not in {"asyncio", "sqlite3", "socket", "subprocess"}, f"{path.name} does I/O via {name}"


@pytest.mark.parametrize("folder", ["ports", "app"])
def test_ports_and_app_never_import_adapters(folder: str) -> None:
    for path in _files(folder):
        for name in _imports(path):
            assert not name.startswith(("opendispatch.adapters", "opendispatch.bootstrap")), f"{path} imports {name}"


def test_adapters_never_import_each_other() -> None:
    for path in _files("adapters"):
        own = path.relative_to(PACKAGE / "adapters").parts[0]
        for name in _imports(path):
            if name.startswith("opendispatch.adapters."):
                assert name.split(".")[2] == own, f"{path} imports another adapter: {name}"
            assert not name.startswith("opendispatch.app"), f"{path} imports the application: {name}"


def test_support_layer_imports_no_adapter_app_or_root() -> None:
    """The support layer is shared by adapters, so it must not lean on any of them."""
    for path in _files("support"):
        for name in _imports(path):
            assert not name.startswith(
                ("opendispatch.adapters", "opendispatch.app", "opendispatch.bootstrap", "opendispatch.config")
            ), f"{path} imports {name}"


#: The composition root, the only part of the package that may import `opendispatch.testing`
#: (bootstrap's `fly-emulator` sprite backend).
COMPOSITION_ROOT = {"bootstrap.py", "cli.py", "demo.py"}


def test_the_testing_package_is_imported_only_by_the_composition_root() -> None:
    """`opendispatch.testing` stands in for other systems in tests and demos; production code never leans on it."""
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "testing" or str(relative) in COMPOSITION_ROOT:
            continue
        for name in _imports(path):
            assert not name.startswith("opendispatch.testing"), f"{path} imports {name}"


def test_the_testing_package_imports_no_app_or_root() -> None:
    """It may use the domain, ports, support layer and adapters (it stands in for what they talk to)."""
    for path in _files("testing"):
        for name in _imports(path):
            assert not name.startswith(
                ("opendispatch.app", "opendispatch.bootstrap", "opendispatch.config", "opendispatch.cli")
            ), f"{path} imports {name}"


def test_asyncio_stays_out_of_the_core() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "discord" in path.parts:
            continue
        assert "asyncio" not in {n.split(".")[0] for n in _imports(path)}, f"{path} imports asyncio"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    root = PACKAGE.parents[1]
    ci_command = [line for line in (root / ".ci" / "run").read_text().splitlines() if line.startswith("python3")]
    assert len(ci_command) == 1
    readme_head = (root / "README.md").read_text().split("\n## ")[0]
    assert ci_command[0] in readme_head
