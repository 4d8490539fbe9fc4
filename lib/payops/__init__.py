"""payops — Payments Ops runbooks and Finance reconciliation as parameterized, archived notebooks."""

__version__ = "0.1.0"


def _defer_rfc3987_syntax() -> None:
    """Defer ``rfc3987_syntax`` until something validates an IRI with it.

    jsonschema imports it at import time when it is installed (JupyterLab's ``jupyter-events`` installs it
    through ``jsonschema[format-nongpl]``), and its import compiles 38 Lark grammars: a second of CPU in every
    process that imports nbformat — each runbook's runner (papermill), the HTML rendering. Here it is a
    stand-in whose ``is_valid_syntax`` (all jsonschema takes from it) and every other attribute import the
    real module on first use; the ``iri`` / ``iri-reference`` format checks behave as before."""
    import sys

    name = "rfc3987_syntax"
    if name in sys.modules or "jsonschema" in sys.modules:
        return
    from importlib.util import find_spec

    spec = find_spec(name)
    if spec is None:
        return
    import types

    stand_in = types.ModuleType(name, _defer_rfc3987_syntax.__doc__)
    # a package's path, so `from rfc3987_syntax import x` and its submodules resolve without the real import
    stand_in.__path__ = list(spec.submodule_search_locations or [])

    def real() -> types.ModuleType:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        import importlib

        module = importlib.import_module(name)
        sys.modules[name] = module
        return module

    def is_valid_syntax(*args: object, **kwargs: object) -> bool:
        return real().is_valid_syntax(*args, **kwargs)  # type: ignore[no-any-return]

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    def attribute(attr: str) -> object:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(real(), attr)

    stand_in.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules[name] = stand_in


_defer_rfc3987_syntax()
