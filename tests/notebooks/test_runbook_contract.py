"""The notebooks' contract, checked statically (no kernel): fast, and each check fails when broken.

Every notebook under ``runbooks/`` and ``notebooks/``:

- is valid nbformat 4 and uses the ``python3`` kernelspec;
- is committed clean: no outputs, no execution counts, no papermill metadata or injected cells;
- holds no logic: no ``def`` / ``async def`` / ``class`` / ``lambda`` in any code cell (AST, not substrings);
- opens with a markdown cell describing the step (a ``#`` heading);
- has exactly one ``parameters``-tagged cell, and it is the first code cell, made of plain literal
  assignments only.

A runbook step notebook (``runbooks/<sop>/<step>.ipynb``) additionally:

- declares exactly ``model fields | runner.RUN_PARAMS | runner.STEP_PARAMS[step]`` with safe defaults
  (``dry_run = True``, ``run_id = None``; other defaults equal the model's and the runner's);
- builds its context with ``StepContext.from_notebook("<its own step>", run_id, globals())`` exactly once
  and uses every step-specific parameter;
- matches ``runner.SOPS`` one to one (every step has a notebook, every notebook is a step).

The helpers are themselves checked against synthetic cells at the bottom of this module.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from payops import runner
from payops.checks.params import GoLiveParams, PostRunParams, PreRunParams
from payops.cycle.runbook import CycleParams
from payops.incident.params import CloseParams, IncidentParams, VerifyParams
from payops.monitor.dashboard_run import DashboardParams
from payops.params import ManualPayoutParams
from payops.reconcile.params import ReconParams
from payops.rehearsal.params import RehearsalParams

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIRS = (ROOT / "runbooks", ROOT / "notebooks")
# the parameter model of each SOP's notebooks; a new SOP must be added here (the test says so)
SOP_MODELS: dict[str, type] = {"manual_payout": ManualPayoutParams, "reconciliation": ReconParams,
                               "payout_cycle": CycleParams, "go_live_check": GoLiveParams,
                               "pre_run_check": PreRunParams, "post_run_check": PostRunParams,
                               "monitoring": DashboardParams,
                               "checkout_incident": IncidentParams, "incident_verify": VerifyParams,
                               "rehearsal": RehearsalParams,
                               "incident_close": CloseParams}
FORBIDDEN_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
SAFE_DEFAULTS: dict[str, Any] = {"dry_run": True, "run_id": None}


def _all_notebooks() -> list[Path]:
    found: list[Path] = []
    for d in NOTEBOOK_DIRS:
        if d.is_dir():
            found += [p for p in d.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


NOTEBOOKS = _all_notebooks()
RUNBOOK_NOTEBOOKS = [p for p in NOTEBOOKS if p.is_relative_to(ROOT / "runbooks")]


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --- helpers (each one is self-checked below) -----------------------------------------------------
def cell_ast(source: str) -> ast.Module:
    """Parse a code cell as IPython would run it (magics become plain calls first)."""
    return ast.parse(TransformerManager().transform_cell(source))


def forbidden_constructs(source: str) -> list[str]:
    """Every function, class or lambda defined in a cell, as ``'<kind> line N'``."""
    return [f"{type(n).__name__} line {n.lineno}" for n in ast.walk(cell_ast(source)) if isinstance(n, FORBIDDEN_NODES)]


def output_problems(nb: Any) -> list[str]:
    problems: list[str] = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        if c.get("outputs"):
            problems.append(f"cell {i} has {len(c.outputs)} output(s)")
        if c.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {c.execution_count}")
        if "execution" in c.get("metadata", {}):
            problems.append(f"cell {i} has execution timestamps in its metadata")
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            problems.append(f"cell {i} is a papermill injected-parameters cell")
    if "papermill" in nb.metadata:
        problems.append("notebook metadata holds papermill run data (committed from an executed copy?)")
    return problems


def parameter_cells(nb: Any) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]


def parameter_assignments(source: str) -> dict[str, Any]:
    """``{name: literal default}`` of a parameters cell. Anything but ``name = <literal>`` (imports,
    calls, tuple targets, augmented or repeated assignments…) raises ValueError."""
    out: dict[str, Any] = {}
    for node in cell_ast(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            targets, value = node.targets, node.value
        else:
            raise ValueError(f"line {node.lineno}: only `name = <literal>` belongs in a parameters cell, "
                             f"got {ast.unparse(node)!r}")
        name = targets[0].id  # type: ignore[attr-defined]
        if name in out:
            raise ValueError(f"line {node.lineno}: {name} is assigned twice")
        try:
            out[name] = ast.literal_eval(value)
        except ValueError:
            raise ValueError(
                f"line {node.lineno}: default of {name} is not a literal: {ast.unparse(value)!r}") from None
    return out


def from_notebook_calls(sources: list[str]) -> list[ast.Call]:
    return [n for src in sources for n in ast.walk(cell_ast(src))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "from_notebook"]


def names_loaded(sources: list[str]) -> set[str]:
    return {n.id for src in sources for n in ast.walk(cell_ast(src))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def expected_parameters(sop: str, step: str) -> set[str]:
    model = SOP_MODELS[sop]
    return set(model.model_fields) | set(runner.RUN_PARAMS) | set(runner.STEP_PARAMS.get(step, {}))  # type: ignore[attr-defined]


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _code_sources(nb: Any, *, skip: frozenset[int] | set[int] = frozenset()) -> list[str]:
    return [c.source for i, c in enumerate(nb.cells) if c.cell_type == "code" and i not in skip]


# --- inventory --------------------------------------------------------------------------------------
def test_notebooks_are_found() -> None:
    assert RUNBOOK_NOTEBOOKS, "no notebook under runbooks/: the discovery (or the layout) is broken"


@pytest.mark.parametrize("sop", sorted(runner.SOPS))
def test_runner_steps_match_notebook_files(sop: str) -> None:
    steps = runner.SOPS[sop]
    files = sorted(p.stem for p in runner.NOTEBOOK_DIRS[sop].glob("*.ipynb"))
    missing = [s for s in steps if not runner.notebook_path(sop, s).is_file()]
    assert not missing, f"runner.SOPS[{sop!r}] has steps without a notebook: {missing}"
    extra = sorted(set(files) - set(steps))
    assert not extra, f"runbooks/{sop}/ has notebooks the runner never executes: {extra}"
    assert list(steps) == sorted(steps), f"step order {steps} is not the files' (and nbval's) alphabetical order"
    unknown = sorted(set(runner.STEP_PARAMS) - {s for sop_steps in runner.SOPS.values() for s in sop_steps})
    assert not unknown, f"runner.STEP_PARAMS names steps that do not exist: {unknown}"


def test_every_runbook_folder_is_a_known_sop() -> None:
    folders = {p.relative_to(runner.RUNBOOKS_DIR).parts[0] for p in RUNBOOK_NOTEBOOKS}
    assert folders <= set(runner.SOPS), (
        f"runbook folders the runner does not know: {sorted(folders - set(runner.SOPS))}")
    assert set(runner.SOPS) <= set(SOP_MODELS), (
        f"no parameter model known to this test for {sorted(set(runner.SOPS) - set(SOP_MODELS))}: add it to SOP_MODELS")


# --- every notebook ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_valid_nbformat4_python3(path: Path) -> None:
    nb = _read(path)
    assert nb.nbformat == 4, f"nbformat {nb.nbformat}"
    nbformat.validate(nb)
    ks = nb.metadata.get("kernelspec", {})
    assert ks.get("name") == "python3" and ks.get("language") == "python", f"kernelspec {ks}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_committed_without_outputs(path: Path) -> None:
    problems = output_problems(_read(path))
    assert not problems, "clear outputs before committing: " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_logic_in_cells(path: Path) -> None:
    nb = _read(path)
    found = {i: forbidden_constructs(c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    found = {i: f for i, f in found.items() if f}
    assert not found, f"logic belongs in payops, not in the notebook: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_first_cell_is_the_sop_description(path: Path) -> None:
    nb = _read(path)
    assert nb.cells, "empty notebook"
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"first cell is {first.cell_type}, not the markdown SOP description"
    text = first.source.strip()
    assert text.startswith("#"), "the SOP description must open with a '#' heading"
    assert len(text.splitlines()) > 1, "the SOP description is only a heading"
    if path.is_relative_to(runner.RUNBOOKS_DIR):
        step = path.stem
        number, _, name = step.partition("-")
        heading = text.splitlines()[0].lower()
        assert f"step {number}" in heading and name.replace("-", " ") in heading, (
            f"heading {heading!r} does not name step {number} ({name}): copied from another step?")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_one_parameters_cell_first_among_code_cells(path: Path) -> None:
    nb = _read(path)
    idx = parameter_cells(nb)
    assert len(idx) == 1, f"expected exactly one cell tagged 'parameters', found cells {idx}"
    cell = nb.cells[idx[0]]
    assert cell.cell_type == "code", "the 'parameters' tag is on a non-code cell"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert idx[0] == first_code, "code runs before the parameters cell (it would see the defaults, not the run's)"
    parameter_assignments(cell.source)  # raises with the offending line


# --- runbook step notebooks ------------------------------------------------------------------------------
def _runbook_params(path: Path) -> tuple[str, str, dict[str, Any], Any, int]:
    sop, step = path.parent.name, path.stem
    nb = _read(path)
    (i,) = parameter_cells(nb)
    return sop, step, parameter_assignments(nb.cells[i].source), nb, i


@pytest.mark.parametrize("path", RUNBOOK_NOTEBOOKS, ids=_id)
def test_parameters_are_exactly_the_contract(path: Path) -> None:
    sop, step, declared, _, _ = _runbook_params(path)
    expected = expected_parameters(sop, step)
    assert set(declared) == expected, (
        f"missing {sorted(expected - set(declared))}, not part of the contract {sorted(set(declared) - expected)}")


@pytest.mark.parametrize("path", RUNBOOK_NOTEBOOKS, ids=_id)
def test_parameter_defaults_are_safe(path: Path) -> None:
    sop, step, declared, _, _ = _runbook_params(path)
    for name, value in SAFE_DEFAULTS.items():
        assert name in declared and declared[name] is value, (
            f"{name} must default to {value!r}, got {declared.get(name)!r}")
    model = SOP_MODELS[sop]
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if not field.is_required() and name in declared:
            assert declared[name] == field.default and type(declared[name]) is type(field.default), (
                f"{name} defaults to {declared[name]!r} here but {field.default!r} in {model.__name__}")
    for name, value in {**runner.RUN_PARAMS, **runner.STEP_PARAMS.get(step, {})}.items():
        assert declared[name] == value, f"{name} defaults to {declared[name]!r} here but {value!r} in the runner"


@pytest.mark.parametrize("path", RUNBOOK_NOTEBOOKS, ids=_id)
def test_context_built_for_its_own_step(path: Path) -> None:
    _, step, _, nb, i = _runbook_params(path)
    sources = _code_sources(nb, skip={i})
    calls = from_notebook_calls(sources)
    assert len(calls) == 1, f"expected one StepContext.from_notebook(...) call, found {len(calls)}"
    call = calls[0]
    assert len(call.args) == 3 and not call.keywords, ast.unparse(call)
    step_arg, run_arg, ns_arg = call.args
    assert isinstance(step_arg, ast.Constant) and step_arg.value == step, (
        f"{ast.unparse(call)} does not name this notebook's step {step!r}")
    assert isinstance(run_arg, ast.Name) and run_arg.id == "run_id", ast.unparse(call)
    assert ast.unparse(ns_arg) == "globals()", ast.unparse(call)
    unused = sorted(set(runner.STEP_PARAMS.get(step, {})) - names_loaded(sources))
    assert not unused, f"step parameters declared but never used: {unused}"


# --- the helpers catch what they should (synthetic cells) -----------------------------------------------------
@pytest.mark.parametrize("src", [
    "def f():\n    return 1",
    "async def f():\n    pass",
    "class C:\n    pass",
    "x = sorted(y, key=lambda r: r[0])",
    "if True:\n    def nested(): pass",
    "%matplotlib inline\nf = lambda: 1",
])
def test_detector_flags_logic(src: str) -> None:
    assert forbidden_constructs(src)


@pytest.mark.parametrize("src", [
    "define = 1\nclassify = 'def x(): lambda'",
    "# def f(): a comment\nprint('class C: lambda')",
    "%matplotlib inline\nresult.table()",
])
def test_detector_ignores_lookalikes(src: str) -> None:
    assert forbidden_constructs(src) == []


def _clean_nb() -> Any:
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Step\n\ntext"),
        nbformat.v4.new_code_cell("dry_run = True\nrun_id = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(1)"),
    ])


def test_output_checker_flags_dirty_notebooks() -> None:
    assert output_problems(_clean_nb()) == []
    dirty = _clean_nb()
    dirty.cells[2].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    dirty.cells[2].execution_count = 3
    dirty.metadata["papermill"] = {"parameters": {}}
    assert len(output_problems(dirty)) == 3
    injected = _clean_nb()
    injected.cells.insert(2, nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}))
    assert output_problems(injected)


def test_parameter_cell_checks_catch_mistakes() -> None:
    nb = _clean_nb()
    assert parameter_cells(nb) == [1]
    twice = copy.deepcopy(nb)
    twice.cells[2].metadata["tags"] = ["parameters"]
    assert parameter_cells(twice) == [1, 2]
    assert parameter_assignments("a = 1\nb: str = ''\nc = None\nd = {'k': [1.5]}") == {
        "a": 1, "b": "", "c": None, "d": {"k": [1.5]}}
    for bad in ("import os", "a = os.environ['X']", "a, b = 1, 2", "a = 1\na = 2", "a += 1", "print(1)"):
        with pytest.raises(ValueError):
            parameter_assignments(bad)
    fields = expected_parameters("manual_payout", "50-settle")
    assert "wait_seconds" in fields and "run_id" in fields and "amount" in fields
    assert "wait_seconds" not in expected_parameters("manual_payout", "10-verify")


def test_from_notebook_call_finder() -> None:
    calls = from_notebook_calls(['ctx = StepContext.from_notebook("20-transfer", run_id, globals())', "x = 1"])
    assert len(calls) == 1 and calls[0].args[0].value == "20-transfer"  # type: ignore[attr-defined]
    assert from_notebook_calls(["ctx = StepContext.load('x', run_id)"]) == []
    assert "wait_seconds" in names_loaded(["settle.run(ctx, wait_seconds=wait_seconds)"])
    assert "wait_seconds" not in names_loaded(["settle.run(ctx, wait_seconds=120)"])
