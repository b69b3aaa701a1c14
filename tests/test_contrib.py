"""The monitoring kit in contrib/: rules that promtool accepts and unit-tests, and a
dashboard and rules that speak only of series the daemon really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pykeep.ops import metrics
from tests.test_ops_sample import sample_snapshot

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
RULES = CONTRIB / "prometheus" / "pykeep-alerts.yml"
RULE_TESTS = CONTRIB / "prometheus" / "pykeep-alerts.test.yml"
DASHBOARD = CONTRIB / "grafana" / "pykeep-dashboard.json"
#: labels Prometheus adds at scrape time
SCRAPE_LABELS = {"instance", "job"}
METRIC = re.compile(r"\b((?:keepalived|pykeep)_[a-z_]+)\b")


def promtool() -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: `make setup` installs it (Debian package prometheus)"
    return exe


def exported() -> dict[str, set[frozenset[str]]]:
    """Sample name → the label-name sets it is exported with, from a real render."""
    out: dict[str, set[frozenset[str]]] = {}
    for fam in text_string_to_metric_families(metrics.render(sample_snapshot())):
        for s in fam.samples:
            out.setdefault(s.name, set()).add(frozenset(s.labels) - {"le"})
    return out


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 5 rules found" in check.stdout
    test = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert test.returncode == 0, test.stdout + test.stderr


def test_every_alert_is_unit_tested() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in t["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert alerts == tested
    assert alerts == {
        "PykeepSplitBrain",
        "PykeepInstanceFault",
        "PykeepRealServerDown",
        "PykeepQuorumLost",
        "PykeepConfigReloadFailed",
    }


def test_rule_test_series_are_the_daemons_own() -> None:
    """Every input series has a name and label set that a real /metrics scrape has."""
    real = exported()
    for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for series in t["input_series"]:
            m = re.fullmatch(r"([a-z_]+)\{(.*)\}", series["series"])
            assert m, series
            labels = frozenset(re.findall(r'(\w+)="', m.group(2))) - SCRAPE_LABELS
            assert labels in real.get(m.group(1), set()), (m.group(1), labels, real.get(m.group(1)))


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_only_exported_names(source: str) -> None:
    text = RULES.read_text() if source == "rules" else "\n".join(dashboard_exprs())
    names = set(METRIC.findall(text))
    assert names, source
    missing = names - set(exported())
    assert not missing, f"{source} uses series the daemon does not export: {sorted(missing)}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel query (Grafana's variables filled in)."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    rules = [
        {"record": f"pykeep:dashboard_query_{i}", "expr": e}
        for i, e in enumerate(
            e.replace("$__rate_interval", "5m").replace("$instance", ".*") for e in exprs
        )
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}  # Grafana's 24-column grid: no two panels overlap
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (p["title"], cells[(x, y)])
                cells[(x, y)] = p["title"]


def test_reload_series_follow_the_daemons_reloads(tmp_path: Path) -> None:
    """What PykeepConfigReloadFailed watches: a refused reload sets it, a good one clears it."""
    import trio

    from pykeep.config import load_text
    from pykeep.config.model import Config
    from pykeep.ops.view import Ops

    config = load_text("global_defs {\n    router_id lb1\n}\n", "keepalived.conf").config
    answers: list[tuple[Config | None, list[str]]] = [
        (None, ["(keepalived.conf: Line 2) Unknown keyword 'router_idd'"]),
        (config, []),
    ]
    ops = Ops(config, vrrp=None, loader=lambda: answers.pop(0), drain_file=tmp_path / "d.json")

    def scrape() -> dict[str, float]:
        text = metrics.render(ops.snapshot())
        return {
            s.name: s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name.startswith("pykeep_config_")
        }

    assert scrape() == {
        "pykeep_config_reloads_total": 0,
        "pykeep_config_reload_failures_total": 0,
        "pykeep_config_last_reload_successful": 1,
    }
    assert trio.run(ops.apply_reload)  # refused: the errors come back
    assert scrape() == {
        "pykeep_config_reloads_total": 0,
        "pykeep_config_reload_failures_total": 1,
        "pykeep_config_last_reload_successful": 0,
    }
    assert trio.run(ops.apply_reload) == []
    assert scrape() == {
        "pykeep_config_reloads_total": 1,
        "pykeep_config_reload_failures_total": 1,
        "pykeep_config_last_reload_successful": 1,
    }
