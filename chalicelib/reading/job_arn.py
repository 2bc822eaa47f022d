"""A Batch job ARN, read strictly: the one shape a button carries and a click is acted on."""

from __future__ import annotations

import re
from dataclasses import dataclass

# arn:<partition>:batch:<region>:<12-digit account>:job/<job id> (an array child's id ends
# ":<index>", a node's "#<node>").
JOB_ARN = re.compile(r"arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):batch:"
                     r"(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]):(?P<account>[0-9]{12}):job/(?P<job_id>[A-Za-z0-9:#_-]{1,128})")


@dataclass(frozen=True)
class JobArn:
    """A job ARN in parts."""

    arn: str
    region: str
    account: str
    job_id: str


def parse_job_arn(value: str | None) -> JobArn | None:
    """``value`` as a job ARN in parts, or None when it is not one."""
    found = JOB_ARN.fullmatch(value or "")
    if found is None:
        return None
    return JobArn(found.group(0), found["region"], found["account"], found["job_id"])
