"""The alerts' and the workbook's KQL read only what the code emits (tests/infra/kql_contract.py),
and the check notices when they don't; the workbook is a valid Microsoft.Insights/workbooks
resource linked to the Application Insights component."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import contract
import kql_contract
import pytest

REPO = Path(__file__).resolve().parents[2]
WORKBOOK_TYPE = "Microsoft.Insights/workbooks@2023-06-01"


def test_the_queries_read_only_what_the_code_emits() -> None:
    assert kql_contract.check(REPO) == []


def test_every_query_is_found() -> None:
    found = kql_contract.queries(REPO / "infra")
    alerts = [q for q in found if not q.workbook]
    workbook = [q for q in found if q.workbook]
    assert len(alerts) == 4 and len(workbook) >= 8
    # The alert's ${maxDequeueCount} is evaluated through main.bicep from host.json.
    assert any("dequeue_count) >= 5" in q.text for q in alerts)
    texts = "\n".join(q.text for q in workbook)
    for needed in ('"export report"', '"item outcome"', "lag_seconds", '"graph throttled"',
                   '"archive.graph.latency"', '"queue depth"', "customDimensions.poison",
                   '"fetch run"', "customDimensions.error"):
        assert needed in texts


def test_the_code_side_is_discovered() -> None:
    code = kql_contract.emitted(REPO)
    assert {"status", "reconciled", "discrepancy", "day", "total"} <= code.events[
        ("traces", "export report")]
    assert {"error", "stored"} <= code.events[("traces", "fetch run")]  # through **summary
    assert code.events[("traces", "queue depth")] == {"items", "poison"}
    assert "lag_seconds" in code.events[("traces", "item outcome")]
    assert code.events[("traces", "import attempt failed")] == {"dequeue_count"}  # extra=
    assert code.events[("customMetrics", "archive.items")] == {"outcome", "reason"}
    assert code.events[("customMetrics", "archive.graph.latency")] == {"write"}
    assert {"export", "outcome"} <= code.events[("dependencies", "import item")]


def test_unresolvable_dimensions_are_an_error(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("def f(log):\n    event(log, 'x', **compute())\n")
    with pytest.raises(kql_contract.UnresolvedDimensions, match="cannot tell which dimensions"):
        kql_contract.emitted(REPO, [source])
    source.write_text("def f(log):\n    d = {'a': 1}\n    event(log, 'x', b=2, **d)\n"
                      "    log.warning('y', extra={'c': 3})\n")
    assert kql_contract.emitted(REPO, [source]).events == {("traces", "x"): {"a", "b"},
                                                           ("traces", "y"): {"c"}}


# ---- Mutations: each breaks the contract and must be reported -----------------------------------


@pytest.fixture
def infra_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    shutil.copy(REPO / "host.json", tmp_path / "host.json")
    return tmp_path / "infra"


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times in {path.name}"
    path.write_text(text.replace(old, new))


def _workbook_edit(infra: Path, item: str, old: str, new: str) -> None:
    path = infra / "app" / "workbook.json"
    data = json.loads(path.read_text())
    content = next(i["content"] for i in data["items"] if i["name"] == item)
    assert old in content["query"]
    content["query"] = content["query"].replace(old, new)
    path.write_text(json.dumps(data))


def test_a_renamed_event_in_an_alert_is_reported(infra_copy: Path) -> None:
    assert kql_contract.check(REPO, infra_copy) == []
    _edit(infra_copy / "app" / "alerts.bicep", "message == \"export report\"",
          "message == \"export reports\"")
    problems = kql_contract.check(REPO, infra_copy)
    assert problems[0] == ("alerts.bicep reconcileAlert criterion 0: reads message == "
                           "'export reports', which the code does not emit in traces")
    assert problems[1:] == [
        f"alerts.bicep reconcileAlert criterion 0: reads customDimensions.{dim} but names no "
        "emitted event that carries it" for dim in ("discrepancy", "export", "reconciled")]


def test_a_dimension_the_event_does_not_carry_is_reported(infra_copy: Path) -> None:
    _edit(infra_copy / "app" / "alerts.bicep", "customDimensions.reconciled",
          "customDimensions.is_reconciled")
    assert kql_contract.check(REPO, infra_copy) == [
        "alerts.bicep reconcileAlert criterion 0: reads customDimensions.is_reconciled, which "
        "'export report' does not carry"]


def test_a_loose_match_on_our_own_event_is_reported(infra_copy: Path) -> None:
    _edit(infra_copy / "app" / "alerts.bicep", "message == \"graph throttled\"",
          "message has \"graph throttled\"")
    problems = kql_contract.check(REPO, infra_copy)
    assert problems == ["alerts.bicep throttleAlert criterion 0: matches message loosely on "
                        "'graph throttled'; name the event exactly (message == \"...\"), or "
                        "list a host log record in HOST_EVENTS",
                        ]


def test_workbook_mutations_are_reported(infra_copy: Path) -> None:
    _workbook_edit(infra_copy, "lag", "customDimensions.lag_seconds", "customDimensions.lag")
    _workbook_edit(infra_copy, "latency", '"archive.graph.latency"', '"archive.graph.latency_ms"')
    _workbook_edit(infra_copy, "fetch", 'where message == "fetch run"', "where true")
    unnamed = "but names no emitted event that carries it"
    assert kql_contract.check(REPO, infra_copy) == [
        "workbook.bicep workbook item 'lag': reads customDimensions.lag, which 'item outcome' "
        "does not carry",
        "workbook.bicep workbook item 'latency': reads name == 'archive.graph.latency_ms', "
        "which the code does not emit in customMetrics",
        f"workbook.bicep workbook item 'latency': reads customDimensions.write {unnamed}",
        "workbook.bicep workbook item 'fetch': reads traces without naming the events it means",
        *(f"workbook.bicep workbook item 'fetch': reads customDimensions.{dim} {unnamed}"
          for dim in ("bytes", "checkpoint", "error", "skipped", "stored")),
    ]


def test_the_workbook_may_not_show_who(infra_copy: Path) -> None:
    # The mailbox hash is emitted with "graph throttled", but the workbook shows counts only.
    _workbook_edit(infra_copy, "throttling", "by bin(timestamp, 15m)",
                   "by bin(timestamp, 15m), tostring(customDimensions.mailbox)")
    assert kql_contract.check(REPO, infra_copy) == [
        "workbook.bicep workbook item 'throttling': the workbook shows counts only; it must "
        "not read customDimensions.mailbox"]


def test_a_renamed_dimension_in_the_code_is_reported(tmp_path: Path) -> None:
    sources = sorted((REPO / "shared").glob("*.py"))
    copied = []
    for source in sources:
        target = tmp_path / source.name
        text = source.read_text()
        if source.name == "reports.py":
            assert text.count("status=status,") == 1
            text = text.replace("status=status,", "state=status,")
        target.write_text(text)
        copied.append(target)
    code = kql_contract.emitted(REPO, copied)
    assert kql_contract.check(REPO, code=code) == [
        "workbook.bicep workbook item 'exports': reads customDimensions.status, which "
        "'export report' does not carry"]


# ---- The workbook resource -----------------------------------------------------------------------


def _types_file() -> Path:
    for base in (REPO.parent, REPO.parent.parent):
        index = base / "shared" / "bicep-types" / "index.json"
        if index.exists():
            return index.parent / json.loads(index.read_text())[WORKBOOK_TYPE]
    pytest.skip("the Bicep type data (../shared/bicep-types) is not beside this checkout")


def _workbook_properties_schema() -> dict[str, int]:
    """Property name -> flags (1 required, 2 read-only) of the workbook's `properties`."""
    types: list[dict[str, Any]] = json.loads(_types_file().read_text())

    def ref(node: dict[str, Any]) -> dict[str, Any]:
        return types[int(node["$ref"].rsplit("/", 1)[1])]

    resource = next(t for t in types if t.get("$type") == "ResourceType"
                    and t["name"] == WORKBOOK_TYPE)
    properties = ref(ref(resource["body"])["properties"]["properties"]["type"])
    return {name: spec.get("flags", 0) for name, spec in properties["properties"].items()}


def test_the_workbook_is_a_valid_workbook_linked_to_application_insights() -> None:
    dep = contract.load_deployment(REPO / "infra")
    [(res, scope)] = list(dep.resources("Microsoft.Insights/workbooks"))
    body = contract.evaluate(res.body, scope)
    assert body["kind"] == "shared" and body["properties"]["category"] == "workbook"
    assert isinstance(body["name"], contract.Call) and body["name"].name == "guid"
    source = body["properties"]["sourceId"]
    assert isinstance(source, contract.Unknown) and source.text == "appInsights.id"
    assert scope.file.resources["appInsights"].type == "Microsoft.Insights/components"
    # ... the component main.bicep's monitoring module creates.
    assert contract.evaluate(("id", "applicationInsightsName"), scope) == contract.Unknown(
        "monitoring.outputs.applicationInsightsName")
    schema = _workbook_properties_schema()
    given = set(body["properties"])
    assert given <= set(schema)
    assert {n for n, flags in schema.items() if flags & 1} <= given
    assert not {n for n in given if schema[n] & 2}  # nothing read-only


def test_the_workbook_json_is_a_notebook_whose_queries_use_the_time_range() -> None:
    data = kql_contract.workbook_json(REPO / "infra")
    assert data["version"] == "Notebook/1.0"
    parameters = next(i for i in data["items"] if i["type"] == 9)
    assert [p["name"] for p in parameters["content"]["parameters"]] == ["TimeRange"]
    queries = [i for i in data["items"] if i["type"] == 3]
    assert queries and all(q["content"]["timeContextFromParameter"] == "TimeRange"
                           and q["content"]["resourceType"] == "microsoft.insights/components"
                           and q["content"]["queryType"] == 0 for q in queries)
    assert len({i["name"] for i in data["items"]}) == len(data["items"])
