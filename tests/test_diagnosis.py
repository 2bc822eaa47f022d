"""Diagnosis table: one fixture per entry, first match wins, unknown failures get no hint."""

import copy

import pytest
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from app import app
from chalicelib.deciding.diagnosis import DIAGNOSES, Diagnosis, diagnose
from chalicelib.reading.event import JobStateChange
from tests.conftest import event_names, load_event

# Fixtures of other shapes of an entry's failure (a newer platform writing the same cause its way).
VARIANTS = {
    "diag_image_pull_eks": "image_pull",
    "diag_out_of_memory_fargate": "out_of_memory",
}


def job(name_or_event):
    event = load_event(name_or_event) if isinstance(name_or_event, str) else name_or_event
    return JobStateChange.from_event(event)


def finding_name(name_or_event):
    finding = diagnose(job(name_or_event))
    return finding.name if finding else None


def test_every_entry_has_its_own_fixture():
    names = [entry.name for entry in DIAGNOSES]
    assert len(names) == len(set(names))
    assert sorted(f"diag_{n}" for n in names) == sorted(n for n in event_names() if n.startswith("diag_")
                                                        and n not in VARIANTS)
    assert set(VARIANTS.values()) <= set(names)


@pytest.mark.parametrize("entry", [e.name for e in DIAGNOSES])
def test_each_entry_matches_its_fixture(entry):
    assert finding_name(f"diag_{entry}") == entry


@pytest.mark.parametrize("fixture", sorted(VARIANTS))
def test_each_variant_matches_its_entry(fixture):
    assert finding_name(fixture) == VARIANTS[fixture]


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


def test_an_oom_word_in_a_persons_reason_is_not_out_of_memory():
    # Only ECS and Kubernetes write OutOfMemoryError/OOMKilled; a terminated job's status reason is free text.
    event = load_event("diag_stopped_by_person")
    event["detail"]["statusReason"] = "OOMKilled twice already, stopping it (dana)"
    for container in (event["detail"]["container"], event["detail"]["attempts"][0]["container"]):
        container["exitCode"] = 137
    assert finding_name(event) == "stopped_by_person"


def test_out_of_memory_without_an_exit_code_says_so_without_inventing_one():
    # Fargate's OOM kill: "OutOfMemoryError: Container killed due to memory usage", no exitCode.
    finding = diagnose(job("diag_out_of_memory_fargate"))
    assert job("diag_out_of_memory_fargate").exit_code is None
    assert finding.title == "Out of memory" and "MEMORY" in finding.hint and "137" not in finding.hint
    # A container that exited on its own (2) did not run out, whatever its reason says.
    event = load_event("diag_out_of_memory_fargate")
    for container in (event["detail"]["container"], event["detail"]["attempts"][0]["container"]):
        container["exitCode"] = 2
    assert finding_name(event) is None


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
    assert finding.title == "Terminated"
    assert "terminated while it ran" in finding.hint
    reason = "Stopped by dana: wrong input bucket, resubmitting with s3://reports-prod/2024-06 (INC-2291)"
    assert f"“{reason}”" in finding.hint


def test_a_job_that_ran_and_failed_with_an_unknown_reason_is_not_cancelled_by_a_person():
    # The report: a Fargate job that ran 4m 24s, its attempts in a shape without startedAt, an unknown
    # status reason. It was told "cancelled before it started by a person".
    event = load_event("fargate_failed")
    detail = event["detail"]
    detail["startedAt"], detail["stoppedAt"] = 1721639805238, 1721639805238 + 264_000
    detail["statusReason"] = "Task stopped: ECS agent disconnected while the task was running"
    # The agent lost the task: no exit code anywhere.
    detail["attempts"] = [{"taskProperties": [{"containers": [{"name": "render"}]}],
                           "statusReason": "Task stopped: ECS agent disconnected"}]
    del detail["container"]["exitCode"]
    assert job(event).started_at is not None and job(event).exit_code is None
    assert diagnose(job(event)) is None


@pytest.mark.parametrize("change", ["reason is the attempt's", "never started"])
def test_an_unknown_reason_without_the_termination_trace_gets_no_hint(change):
    event = load_event("diag_stopped_by_person")
    detail = event["detail"]
    detail["statusReason"] = "worker lost: connection reset by peer"
    if change == "reason is the attempt's":
        detail["attempts"][0]["statusReason"] = detail["statusReason"]
    else:
        for key in ("startedAt", "stoppedAt"):
            detail.pop(key)
            detail["attempts"][0].pop(key)
    assert finding_name(event) is None


def test_a_cancelled_job_gets_no_hint():
    # CancelJob leaves no trace but the caller's reason on a job that never started: like any other
    # reason on such a job, so no guess (the message's reason section shows it).
    event = load_event("diag_dependency_failed")
    event["detail"]["statusReason"] = "duplicate submission, see run 2024-05-13b"
    assert job(event).never_started
    assert diagnose(job(event)) is None


def test_a_very_long_reason_is_quoted_cut():
    event = load_event("diag_stopped_by_person")
    event["detail"]["statusReason"] = "x" * 1024  # TerminateJob's limit
    assert len(diagnose(job(event)).hint) < 500


def test_a_free_text_reason_of_a_job_that_crashed_is_not_a_person():
    # hostile_text_failed: odd status reason, but the container exited 1 on its own.
    assert finding_name("hostile_text_failed") is None


# -- jobStateTimeLimitActions ------------------------------------------------------------------
RUNNABLE_REASONS = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": "Availability Zones",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": "maxvCpus",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": "larger instance type",
    "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS": "AWSServiceRoleForBatch",
}


@pytest.mark.parametrize("code", sorted(RUNNABLE_REASONS))
def test_a_queue_time_limit_cancellation_says_why_it_was_never_placed(code):
    # The text the AWS Batch User Guide documents for a job the queue's action cancelled.
    event = load_event("diag_runnable_time_limit")
    event["detail"]["statusReason"] = f"Canceled by JobStateTimeLimit action due to reason: {code}"
    finding = diagnose(job(event))
    assert finding.name == "runnable_time_limit"
    assert "jobStateTimeLimitActions cancelled it" in finding.hint and RUNNABLE_REASONS[code] in finding.hint


def test_a_blocking_reason_left_on_a_failed_job_is_not_a_person():
    event = load_event("diag_dependency_failed")
    event["detail"]["statusReason"] = (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
        "than that can be met by the CE(s) attached to the job queue.")
    finding = diagnose(job(event))
    assert finding.name == "runnable_time_limit" and "never placed" in finding.hint


def test_an_unknown_queue_reason_code_is_named_not_explained():
    event = load_event("diag_runnable_time_limit")
    event["detail"]["statusReason"] = "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:NEW_THING"
    finding = diagnose(job(event))
    assert finding.name == "runnable_time_limit" and "(MISCONFIGURATION:NEW_THING)" in finding.hint


# -- a hint never recommends what the job already has --------------------------------------------
def _host_terminated(rules, max_attempts, used):
    event = load_event("diag_host_terminated")
    detail = event["detail"]
    detail["retryStrategy"] = {"attempts": max_attempts, "evaluateOnExit": rules}
    detail["attempts"] = [copy.deepcopy(detail["attempts"][0]) for _ in range(used)]
    return job(event)


RETRY_HOST = {"onStatusReason": "Host EC2*", "action": "RETRY"}
EXIT_ALL = {"onReason": "*", "action": "EXIT"}


def test_host_termination_of_a_job_that_retries_it_says_the_retries_ran_out():
    finding = diagnose(_host_terminated([RETRY_HOST, EXIT_ALL], 3, 3))
    assert finding.name == "host_terminated"
    assert "all 3 attempts were used" in finding.hint and "On-Demand" in finding.hint
    assert "evaluateOnExit" not in finding.hint


def test_host_termination_retried_by_default_also_ran_out():
    # attempts > 1 and no rules: Batch retries every failure.
    finding = diagnose(_host_terminated([], 2, 2))
    assert "all 2 attempts were used" in finding.hint and "evaluateOnExit" not in finding.hint


def test_host_termination_stopped_by_an_exit_rule_names_that_rule():
    finding = diagnose(_host_terminated([{"onStatusReason": "Host*", "action": "exit"}, RETRY_HOST], 3, 1))
    assert "EXIT rule that matches this" in finding.hint and "before it" in finding.hint


def test_host_termination_with_a_retry_rule_but_one_attempt_asks_for_attempts_only():
    finding = diagnose(_host_terminated([RETRY_HOST], 1, 1))
    assert "retryStrategy attempts is 1" in finding.hint and "RETRY rule on" not in finding.hint


def test_host_termination_without_retries_recommends_them():
    finding = diagnose(job("diag_host_terminated"))
    assert "evaluateOnExit RETRY rule on onStatusReason \"Host EC2*\"" in finding.hint


def test_fargate_spot_advice_uses_fargates_words():
    event = load_event("fargate_failed")
    event["detail"]["statusReason"] = "Your Spot Task was interrupted."
    event["detail"]["attempts"][0]["statusReason"] = "Your Spot Task was interrupted."
    assert "\"Your Spot Task*\"" in diagnose(job(event)).hint
    event["detail"]["retryStrategy"] = {"attempts": 2, "evaluateOnExit": [
        {"onStatusReason": "Your Spot Task*", "action": "RETRY"}]}
    assert "retries this already" in diagnose(job(event)).hint


def test_a_rule_glob_matches_as_batch_does():
    # Exact text, or a prefix before a trailing "*": "Host EC2" alone does not match the longer reason,
    # so the catch-all EXIT rule after it decides.
    rules = [{"onStatusReason": "Host EC2", "action": "RETRY"}, {"onStatusReason": "*", "action": "EXIT"}]
    assert "EXIT rule that matches this" in diagnose(_host_terminated(rules, 3, 1)).hint


def test_cannot_inspect_container_that_retried_says_the_retries_ran_out():
    finding = diagnose(job("diag_cannot_inspect_container"))
    assert finding.title == "The instance's Docker stopped answering"
    assert "all 2 attempts were used" in finding.hint and "CannotInspectContainerError*" not in finding.hint


def test_cannot_inspect_container_without_retries_recommends_them():
    event = load_event("diag_cannot_inspect_container")
    event["detail"]["retryStrategy"] = {"attempts": 1, "evaluateOnExit": []}
    assert "onReason \"CannotInspectContainerError*\"" in diagnose(job(event)).hint


# -- EKS --------------------------------------------------------------------------------------
def test_eks_image_pull_names_the_node_role():
    finding = diagnose(job("diag_image_pull_eks"))
    assert finding.name == "image_pull" and "node role" in finding.hint and "Fargate" not in finding.hint


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
def test_either_kubernetes_pull_reason_is_an_image_pull(reason):
    event = load_event("diag_image_pull_eks")
    event["detail"]["statusReason"] = event["detail"]["eksAttempts"][0]["statusReason"] = reason
    event["detail"]["eksAttempts"][0]["containers"][0]["reason"] = reason
    assert finding_name(event) == "image_pull"


def test_eviction_names_the_resource_and_is_only_for_eks():
    finding = diagnose(job("diag_pod_evicted"))
    assert "ran low on ephemeral-storage" in finding.hint
    assert "a request for ephemeral-storage equal to its limit" in finding.hint
    assert "memory" not in finding.hint  # its memory request is already set
    event = load_event("ec2_failed")
    event["detail"]["statusReason"] = event["detail"]["attempts"][0]["statusReason"] = "Evicted"
    assert finding_name(event) is None


def test_a_pod_past_its_deadline_is_a_timeout():
    event = load_event("eks_failed")
    event["detail"]["eksAttempts"][0]["statusReason"] = "DeadlineExceeded"
    event["detail"]["eksAttempts"][0]["containers"][0].update(exitCode=137, reason="Error")
    assert finding_name(event) == "timeout"


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


def test_never_started_needs_a_start_that_failed():
    # No attempt and no container reason: Batch never tried (a cancellation), so "check the image" is a guess.
    event = load_event("diag_never_started")
    event["detail"]["attempts"] = []
    event["detail"]["container"].pop("reason", None)
    event["detail"]["statusReason"] = "Job queue etl-old-queue was deleted"
    assert job(event).never_started and finding_name(event) is None


# -- the FAILED handler's message carries each diagnosis -----------------------------------------
HANDLER_CASES = {
    "diag_runnable_time_limit": "Never placed on capacity",
    "diag_cannot_inspect_container": "The instance's Docker stopped answering",
    "diag_pod_evicted": "Pod evicted from its node",
    "diag_out_of_memory_fargate": "Out of memory",
    "diag_image_pull_eks": "Image could not be pulled",
    "diag_resource_initialization": "Task resources could not be set up",
}


def test_the_failed_handler_posts_each_diagnosis(webhook):
    with Client(app, stage_name="local") as client:
        for name in HANDLER_CASES:
            client.lambda_.invoke("on_job_failed", load_event(name))
    assert len(webhook.messages) == len(HANDLER_CASES)
    for (name, title), posted in zip(HANDLER_CASES.items(), webhook.messages, strict=True):
        sections = [b["text"]["text"] for b in posted["blocks"] if b["type"] == "section" and "text" in b]
        [hint] = [t for t in sections if t.startswith(":bulb: ")]
        assert hint.startswith(f":bulb: *{title}*: "), name
        assert "\n" not in hint, name


# -- properties --------------------------------------------------------------------------------
_REASONS = st.one_of(
    st.sampled_from(["Essential container in task exited", "Task failed to start",
                     "Host EC2 (instance i-0123456789abcdef0) terminated.",
                     "CannotInspectContainerError: Could not transition to inspecting",
                     "OutOfMemoryError: Container killed",
                     "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                     "OOMKilled", "Evicted", "DeadlineExceeded", "ErrImagePull", "stopped by ops\n<!here> `x`"]),
    st.text(max_size=80),
)


def _maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def _jobs(draw):
    event = load_event(draw(st.sampled_from(["diag_stopped_by_person", "diag_never_started", "fargate_failed",
                                              "diag_pod_evicted", "diag_runnable_time_limit"])))
    detail = event["detail"]
    detail["statusReason"] = draw(_maybe(_REASONS))
    if draw(st.booleans()):
        detail.pop("startedAt", None)
    attempts = detail["attempts"] or detail.get("eksAttempts") or []
    for attempt in attempts:
        attempt["statusReason"] = draw(_maybe(_REASONS))
        if draw(st.booleans()):
            attempt.pop("startedAt", None)
        container = attempt.get("container") or (attempt.get("containers") or [{}])[0]
        container["exitCode"] = draw(_maybe(st.sampled_from([0, 1, 2, 137, 139, 143])))
        container["reason"] = draw(_maybe(_REASONS))
    if isinstance(detail.get("container"), dict):
        detail["container"]["exitCode"] = attempts[-1].get("container", {}).get("exitCode") if attempts else None
        detail["container"]["reason"] = attempts[-1].get("container", {}).get("reason") if attempts else None
    detail["retryStrategy"] = {"attempts": draw(st.integers(1, 10)), "evaluateOnExit": draw(st.lists(
        st.fixed_dictionaries({"action": st.sampled_from(["RETRY", "exit"])},
                              optional={"onStatusReason": st.sampled_from(["Host EC2*", "*", "Essential*"]),
                                        "onReason": st.sampled_from(["*", "CannotInspect*", "OutOfMemory*"]),
                                        "onExitCode": st.sampled_from(["*", "137", "1*"])}), max_size=3))}
    return job(event)


def _started(j):
    return j.started_at is not None or any(a.started_at for a in j.attempts)


@settings(max_examples=150, deadline=None)
@given(_jobs())
def test_a_hint_says_only_what_the_event_shows(j):
    finding = diagnose(j)
    if finding is None:
        return
    # One line, bounded, whatever the event's text.
    assert "\n" not in finding.hint and len(finding.hint) < 700
    # Nothing "never started" about a job that started.
    if _started(j):
        assert finding.name not in ("never_started", "runnable_time_limit")
    # "A person" only with TerminateJob's trace: started, ended by a signal, a reason none of its attempts has.
    if finding.name == "stopped_by_person":
        assert _started(j) and j.exit_code in (137, 143)
        assert all(a.status_reason != j.status_reason for a in j.attempts)
    # Retries are recommended only to a job without them, and said to have run out only when they did.
    if "Retry it automatically" in finding.hint:
        assert (j.max_attempts or 1) <= 1
    if "attempts were used" in finding.hint:
        assert len(j.attempts) >= j.max_attempts > 1


def test_an_eks_out_of_memory_hint_names_kubernetes_limits_not_resource_requirements():
    event = copy.deepcopy(load_event("eks_failed"))
    event["detail"]["eksAttempts"][-1]["containers"][0].update(exitCode=137, reason="OOMKilled")
    finding = diagnose(job(event))
    assert finding is not None and finding.name == "out_of_memory"
    assert "resources.limits.memory" in finding.hint and "resourceRequirements" not in finding.hint
