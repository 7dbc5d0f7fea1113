"""The package's public names load on first use, so ``cc-collect`` starts light (its Ctrl-C
handling begins only after the package has been imported)."""

from __future__ import annotations

import subprocess
import sys

import cc_collect_async


def test_every_public_name_resolves_to_its_definition() -> None:
    import importlib

    for name in cc_collect_async.__all__:
        value = getattr(cc_collect_async, name)
        if name != "__version__":
            home = importlib.import_module(f"cc_collect_async.{cc_collect_async._HOMES[name]}")
            assert value is getattr(home, name), name
    assert sorted(cc_collect_async.__all__) == sorted([*cc_collect_async._HOMES, "__version__"])


def test_the_converter_export_is_not_replaced_by_its_module() -> None:
    # In a fresh interpreter: importing the submodule first is what would rebind the name.
    probe = (
        "import cc_collect_async.converter, cattrs; "
        "from cc_collect_async import converter; "
        "print(isinstance(converter, cattrs.Converter))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


def test_importing_the_package_or_the_command_loads_no_http_stack() -> None:
    probe = (
        "import sys, cc_collect_async, cc_collect_async.cli; "
        "print(sorted(m for m in ('httpx', 'aiohttp', 'anyio', 'attrs') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
