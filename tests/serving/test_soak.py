"""A short run of the soak benchmark: load, a version swap, a corrupt version, a server SIGKILL and a
generate load, all checked. Its exporter and trainer phases are the behaviours `tests/export/test_versions.py`
(killed exports leave no version and no staging folder) and `tests/training/test_kill.py` plus
`tests/training/test_training.py` (killed and damaged runs resume to the same weights) test directly."""

import json
import os
import subprocess
import sys

import pytest

from tests.serving.helpers import repo_root


@pytest.mark.slow
def test_short_soak_passes_every_check(tmp_path):
    output = tmp_path / "soak.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--clients", "4", "--duration", "3", "--exporter-kills", "0", "--trainer-kills", "0",
                             "--output", str(output)], cwd=repo_root(), capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["phase"]: row for row in json.loads(output.read_text())["rows"]}
    assert list(rows) == ["load", "swap", "corrupt", "kill", "generate"]
    assert all(row["ok"] for row in rows.values()), [row for row in rows.values() if not row["ok"]]
    assert all(rows[phase]["errors"] == 0 and rows[phase]["requests"] > 0 for phase in ("load", "swap", "corrupt", "generate"))
    assert "version 1 retired" in rows["swap"]["detail"] and "version 3 END" in rows["corrupt"]["detail"]
