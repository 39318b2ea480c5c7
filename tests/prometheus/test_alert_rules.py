"""The alert rules shipped in deploy/prometheus: valid for Prometheus (`promtool check
rules`), and each fires on the series that should fire it and not otherwise (`promtool test
rules`, alerts_test.yaml beside this file)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "essc-gateway-alerts.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "Debian's prometheus is needed (scripts/ensure-services.sh)"
    return subprocess.run(  # noqa: S603 - a fixed tool on our own files
        [tool, *args], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_the_rules_are_valid() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout


def test_each_alert_fires_when_it_should() -> None:
    tested = promtool("test", "rules", str(Path(__file__).with_name("alerts_test.yaml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr
