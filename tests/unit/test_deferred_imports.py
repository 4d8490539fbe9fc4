"""payops defers ``rfc3987_syntax`` (38 Lark grammars compiled at import, a second of CPU in every process that
imports nbformat) until an IRI is validated with it — and the validation answers as before."""

from __future__ import annotations

import json
import subprocess
import sys

CHECKS = ("http://example.com/ü", "not an iri at all :: ", "http://[bad", "//host/päth?q", "?")
PROBE = (
    "import json, sys{first}\n"
    "import nbformat, jsonschema\n"
    "loaded = 'lark' in sys.modules\n"
    "fc = jsonschema.FormatChecker()\n"
    f"answers = [[fc.conforms(v, f) for f in ('iri', 'iri-reference')] for v in {CHECKS!r}]\n"
    "print(json.dumps({{'lark_at_import': loaded, 'answers': answers}}))\n"
)


def _probe(first: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_nbformat_after_payops_does_not_compile_the_iri_grammars_and_validates_the_same() -> None:
    plain = _probe("")
    deferred = _probe("\nimport payops")
    assert plain["lark_at_import"] is True  # what jsonschema does by itself (rfc3987-syntax installed)
    assert deferred["lark_at_import"] is False
    assert deferred["answers"] == plain["answers"]
    assert [True, True] in plain["answers"] and [False, False] in plain["answers"]  # both kinds of answer seen


def test_submodules_import_through_the_stand_in() -> None:
    code = ("import payops, sys\nfrom rfc3987_syntax import syntax_helpers\n"
            "import rfc3987_syntax\nprint(rfc3987_syntax.is_valid_syntax('iri', 'http://example.com'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
