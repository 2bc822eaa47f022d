"""`chalice deploy` and `chalice package` import app.py on a laptop: it must need nothing."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
import app
print(json.dumps({
    "handlers": sorted(app.app.handler_map),
    "aws_sdk": sorted(m for m in ("boto3", "botocore") if m in sys.modules),
}))
"""


def test_app_imports_with_an_empty_environment_and_without_boto3():
    # No PATH, no HOME, no AWS or Slack settings; a bogus proxy so any network use would fail.
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={"HTTPS_PROXY": "http://127.0.0.1:9"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["aws_sdk"] == []
    assert {"on_job_failed", "on_job_succeeded"} <= set(report["handlers"])
    assert result.stderr == ""
