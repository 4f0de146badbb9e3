"""Pytest plugin: a ``backend`` fixture over every available Array API backend.

Enable it in your project's ``conftest.py``::

    pytest_plugins = ["xpnet.testing.pytest_plugin"]

Then any test that takes ``backend`` runs once per backend and receives a
:class:`xpnet.testing.Backend`.

* By default the fixture runs on every *usable* backend among numpy, array_api_strict (its
  default device and ``device1``), torch and cupy. A missing library or a machine without
  a usable GPU is reported once, in the terminal summary, with the install hint: not as
  hundreds of SKIPPED lines.
* ``pytest --backends numpy,cupy`` (or ``XPNET_BACKENDS=numpy,cupy``) asks for specific
  backends; an unusable one then skips each of its tests with the reason. ``all`` adds
  jax and the float32-only ``array_api_strict:no_float64`` device.
* ``pytest --require-backends cupy,torch:cuda`` (or ``XPNET_REQUIRE_BACKENDS``) makes an
  unusable backend an error before any test runs: a GPU validation run must not go green
  on the CPU backends alone.
* A test skipped by `pytest.importorskip` (the torch oracles without torch) is summarised
  in one line per missing package, with its install hint, not one line per test file line.
* A test that asks a float32-only device for float64 (through ``backend.asarray``,
  ``backend.dtype`` or ``backend.move``) is skipped with that reason.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ._backends import (
    DEFAULT_BACKENDS,
    INSTALL_HINTS,
    BackendUnavailable,
    Float64Unavailable,
    get_backend,
    requested_backends,
    required_backends,
)

_MISSING_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("xpnet")
    group.addoption(
        "--backends",
        action="store",
        default=None,
        help="comma-separated xpnet backends for the `backend` fixture "
        "(numpy, array_api_strict, array_api_strict:device1, torch, torch:cuda, cupy, jax, "
        "array_api_strict:no_float64, all); default $XPNET_BACKENDS or every usable one of "
        + ",".join(DEFAULT_BACKENDS),
    )
    group.addoption(
        "--require-backends",
        action="store",
        default=None,
        help="comma-separated backends that must be usable, else the run fails at once "
        "(default $XPNET_REQUIRE_BACKENDS); they are added to --backends",
    )


def _explicit(config: Any) -> str | None:
    import os

    return config.getoption("--backends", default=None) or os.environ.get("XPNET_BACKENDS") or None


def pytest_configure(config: Any) -> None:
    required = required_backends(config.getoption("--require-backends", default=None))
    failures = []
    for name in required:
        try:
            get_backend(name)
        except BackendUnavailable as exc:
            failures.append(f"  {name}: {exc}\n    install: {INSTALL_HINTS.get(name.partition(':')[0], '?')}")
    if failures:
        raise pytest.UsageError(
            "required backend(s) are not usable, so this run would not test them:\n" + "\n".join(failures)
        )
    names = list(requested_backends(_explicit(config)))
    names += [n for n in required if n not in names]
    missing: dict[str, str] = {}
    if _explicit(config) is None:
        usable = []
        for name in names:
            try:
                get_backend(name)
                usable.append(name)
            except BackendUnavailable as exc:
                missing[name] = str(exc)
        names = usable
    config.stash[_MISSING_KEY] = missing
    config._xpnet_backends = tuple(names)


def pytest_report_header(config: Any) -> str:
    names = getattr(config, "_xpnet_backends", ())
    return "xpnet backends: " + (", ".join(names) or "none")


def pytest_generate_tests(metafunc: Any) -> None:
    if "backend" in metafunc.fixturenames:
        names = list(getattr(metafunc.config, "_xpnet_backends", DEFAULT_BACKENDS))
        metafunc.parametrize("backend", names, indirect=True, ids=names)


@pytest.fixture
def backend(request: Any) -> Any:
    """The :class:`~xpnet.testing.Backend` for this parametrization (skips if unusable)."""
    try:
        return get_backend(request.param)
    except BackendUnavailable as exc:
        pytest.skip(f"backend unavailable: {exc}")


_IMPORT_SKIP = re.compile(r"^(?:Skipped: )?could not import '([\w.]+)'")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    """One summary line per missing optional package, not one per skipping test file line.

    ``pytest -ra`` groups skips by location; a torch-oracle check skipped through
    ``pytest.importorskip("torch")`` in forty places would print forty lines. Moving
    those skips to one shared pseudo-location folds them into one line that says how many
    tests need the package.
    """
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
        match = _IMPORT_SKIP.match(str(longrepr[2]))
        if match:
            top = match.group(1).partition(".")[0]
            hint = INSTALL_HINTS.get(top, f"pip install {top}")
            report.longrepr = (f"optional package {top!r} missing", None, f"the tests that need it -- {hint}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> Any:
    try:
        return (yield)
    except Float64Unavailable as exc:
        pytest.skip(str(exc))


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    missing = config.stash.get(_MISSING_KEY, {})
    if not missing:
        return
    terminalreporter.section("xpnet backends not tested")
    for name, why in missing.items():
        hint = INSTALL_HINTS.get(name.partition(":")[0], "")
        why = why.splitlines()[0][:160]
        if not why.startswith(name):
            why = f"{name}: {why}"
        terminalreporter.write_line(f"{why} -- to test it: {hint}")
