"""Diagnosis table: one fixture per entry, first match wins, unknown failures get no hint."""

import copy

import pytest

from chalicelib.diagnosis import DIAGNOSES, Diagnosis, diagnose
from chalicelib.event import JobStateChange
from tests.conftest import event_names, load_event


def job(name_or_event):
    event = load_event(name_or_event) if isinstance(name_or_event, str) else name_or_event
    return JobStateChange.from_event(event)


def finding_name(name_or_event):
    finding = diagnose(job(name_or_event))
    return finding.name if finding else None


def test_every_entry_has_its_own_fixture():
    names = [entry.name for entry in DIAGNOSES]
    assert len(names) == len(set(names))
    assert sorted(f"diag_{n}" for n in names) == sorted(n for n in event_names() if n.startswith("diag_"))


@pytest.mark.parametrize("entry", [e.name for e in DIAGNOSES])
def test_each_entry_matches_its_fixture(entry):
    assert finding_name(f"diag_{entry}") == entry


def test_out_of_memory():
    finding = diagnose(job("diag_out_of_memory"))
    assert finding.title == "Out of memory"
    assert "exit 137" in finding.hint and "MEMORY" in finding.hint


def test_out_of_memory_on_eks_says_oomkilled():
    event = load_event("eks_failed")
    container = event["detail"]["eksAttempts"][0]["containers"][0]
    container.update(exitCode=137, reason="OOMKilled")
    assert finding_name(event) == "out_of_memory"


def test_exit_137_alone_is_not_out_of_memory():
    # SIGKILL has other causes (a timeout, a terminate): without a memory word, no guess.
    event = load_event("ec2_failed")
    event["detail"]["container"]["exitCode"] = 137
    event["detail"]["attempts"][0]["container"]["exitCode"] = 137
    assert finding_name(event) is None


def test_a_memory_word_in_a_persons_reason_is_not_out_of_memory():
    event = load_event("diag_stopped_by_person")
    event["detail"]["statusReason"] = "killing it, will retry with more memory (dana)"
    for container in (event["detail"]["container"], event["detail"]["attempts"][0]["container"]):
        container["exitCode"] = 137
    assert finding_name(event) == "stopped_by_person"


def test_host_termination_names_the_instance():
    finding = diagnose(job("diag_host_terminated"))
    assert "(i-0c1f4e6b2a9d87f35)" in finding.hint and "Spot" in finding.hint


def test_fargate_spot_interruption_is_a_host_termination():
    event = load_event("fargate_failed")
    event["detail"]["statusReason"] = "Your Spot Task was interrupted."
    finding = diagnose(job(event))
    assert finding.name == "host_terminated" and "The capacity under the job" in finding.hint


def test_timeout_wins_over_out_of_memory_for_exit_137():
    assert job("timeout_failed").exit_code == 137
    assert finding_name("timeout_failed") == "timeout"
    assert finding_name("diag_timeout") == "timeout"


def test_image_pull_wins_over_never_started():
    assert job("diag_image_pull").never_started and job("never_started_failed").never_started
    assert finding_name("diag_image_pull") == "image_pull"
    assert finding_name("never_started_failed") == "image_pull"


def test_resource_initialization_mentions_what_to_check():
    finding = diagnose(job("diag_resource_initialization"))
    assert "secrets" in finding.hint and job("diag_resource_initialization").never_started


def test_dependency_failure_wins_over_never_started_and_person():
    assert job("diag_dependency_failed").never_started
    assert finding_name("diag_dependency_failed") == "dependency_failed"


def test_terminated_by_a_person_quotes_the_reason():
    finding = diagnose(job("diag_stopped_by_person"))
    assert finding.title == "Cancelled or terminated"
    assert "terminated while it ran" in finding.hint
    reason = "Stopped by dana: wrong input bucket, resubmitting with s3://reports-prod/2024-06 (INC-2291)"
    assert f"“{reason}”" in finding.hint


def test_cancelled_before_it_started_by_a_person():
    event = load_event("diag_dependency_failed")
    event["detail"]["statusReason"] = "duplicate submission, see run 2024-05-13b"
    finding = diagnose(job(event))
    assert finding.name == "stopped_by_person" and "cancelled before it started" in finding.hint
    assert "duplicate submission, see run 2024-05-13b" in finding.hint


def test_a_very_long_reason_is_quoted_cut():
    event = load_event("diag_stopped_by_person")
    event["detail"]["statusReason"] = "x" * 1024  # TerminateJob's limit
    assert len(diagnose(job(event)).hint) < 500


def test_a_free_text_reason_of_a_job_that_crashed_is_not_a_person():
    # hostile_text_failed: odd status reason, but the container exited 1 on its own.
    assert finding_name("hostile_text_failed") is None


def test_queue_action_cancellation_is_not_a_person():
    event = load_event("diag_dependency_failed")
    event["detail"]["statusReason"] = (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
        "than that can be met by the CE(s) attached to the job queue.")
    # Batch cancelled it: no person entry; it never started, so the catch-all applies.
    assert finding_name(event) == "never_started"


def test_never_started_catch_all():
    finding = diagnose(job("diag_never_started"))
    assert finding.name == "never_started" and "no logs" in finding.hint


@pytest.mark.parametrize("name", ["ec2_failed", "fargate_failed", "retried_failed", "eks_failed", "array_parent_failed",
                                  "multinode_parent_failed", "detail_missing_fields", "splunk_log_driver_failed"])
def test_unknown_failures_get_no_hint(name):
    # ec2_failed is the typical one: exit 1, "Essential container in task exited".
    assert diagnose(job(name)) is None


def test_only_failed_jobs_are_diagnosed():
    event = load_event("diag_out_of_memory")
    event["detail"]["status"] = "SUCCEEDED"
    assert diagnose(job(event)) is None


def test_order_first_match_wins_and_a_fork_can_extend_the_table():
    first = Diagnosis("everything", "Everything", lambda j: True, "always")
    assert diagnose(job("diag_out_of_memory"), (first, *DIAGNOSES)).name == "everything"
    assert diagnose(job("diag_out_of_memory"), (*DIAGNOSES, first)).name == "out_of_memory"
    assert diagnose(job("ec2_failed"), (*DIAGNOSES, first)).name == "everything"


def test_a_broken_fork_entry_is_skipped():
    def boom(j):
        raise KeyError("oops")
    broken = Diagnosis("broken", "Broken", boom, "never shown")
    assert diagnose(job("diag_timeout"), (broken, *DIAGNOSES)).name == "timeout"


def test_fixtures_are_not_changed_by_diagnosis():
    event = load_event("diag_stopped_by_person")
    before = copy.deepcopy(event)
    diagnose(job(event))
    assert event == before
