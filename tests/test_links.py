"""Console links: partitions, log group/stream encoding, fallbacks, and never-invented links."""

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.reading.event import JobStateChange
from chalicelib.reading.links import (
    LogLink,
    LogLocation,
    batch_job_url,
    cloudwatch_logs_url,
    console_domain,
    job_links,
    job_log_links,
    job_log_url,
    log_location,
    missing_log_link_reason,
)
from tests.conftest import event_names, load_event


def job(region="us-east-1", **detail):
    detail.setdefault("jobId", "a1b2c3")
    return JobStateChange.from_event(
        {"version": "0", "id": "e1", "source": "aws.batch", "detail-type": "Batch Job State Change",
         "account": "123456789012", "time": "2025-01-01T00:00:00Z", "region": region, "resources": [],
         "detail": detail}
    )


def fixture(name):
    return JobStateChange.from_event(load_event(name))


@pytest.mark.parametrize("region, domain", [
    ("us-east-1", "aws.amazon.com"),
    ("eu-central-2", "aws.amazon.com"),
    ("ap-southeast-4", "aws.amazon.com"),
    ("cn-north-1", "amazonaws.cn"),
    ("cn-northwest-1", "amazonaws.cn"),
    ("us-gov-west-1", "amazonaws-us-gov.com"),
    ("us-gov-east-1", "amazonaws-us-gov.com"),
])
def test_console_domain_follows_the_partition(region, domain):
    assert console_domain(region) == domain


def test_default_log_group_url_is_the_consoles_own_form():
    url = cloudwatch_logs_url(LogLocation("us-west-2", "/aws/batch/job", "etl/default/0a1b2c"))
    assert url == (
        "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2"
        "#logsV2:log-groups/log-group/$252Faws$252Fbatch$252Fjob/log-events/etl$252Fdefault$252F0a1b2c"
    )


def test_hash_and_space_in_a_group_name_are_double_encoded():
    url = cloudwatch_logs_url(LogLocation("eu-west-1", "/batch/etl#nightly run", "s"))
    assert "/log-group/$252Fbatch$252Fetl$2523nightly$2520run/log-events/s" in url
    assert url.count("#") == 1  # only the console's own fragment marker


@pytest.mark.parametrize("region, host", [
    ("cn-north-1", "https://cn-north-1.console.amazonaws.cn/"),
    ("us-gov-west-1", "https://us-gov-west-1.console.amazonaws-us-gov.com/"),
])
def test_links_in_other_partitions(region, host):
    assert cloudwatch_logs_url(LogLocation(region, "/aws/batch/job", "s")).startswith(host)
    assert batch_job_url(region, "abc").startswith(host)


def test_batch_link_keeps_array_index_colon_and_encodes_node_hash():
    assert batch_job_url("us-east-1", "1234-abcd:7").endswith("#jobs/detail/1234-abcd:7")
    assert batch_job_url("us-east-1", "1234-abcd#0").endswith("#jobs/detail/1234-abcd%230")


@pytest.mark.parametrize("region", ["evil.example/x?", "", "US-EAST-1", "us-east-1.attacker.com",
                                    # a whole match, not a prefix: "$" matched before a final newline
                                    "us-east-1\n",
                                    # ASCII digits only: \d also matched these
                                    "us-east-\u0661", "us-east-\uff11"])
def test_a_forged_region_gives_no_link(region):
    assert cloudwatch_logs_url(LogLocation(region, "/aws/batch/job", "s")) is None
    assert batch_job_url(region, "abc") is None


def test_stream_prefers_the_jobs_own_then_the_last_attempt_that_has_one():
    attempts = [{"container": {"logStreamName": "first"}}, {"container": {"logStreamName": "second"}},
                {"container": {}}]
    assert log_location(job(container={"logStreamName": "own"}, attempts=attempts)).stream == "own"
    assert log_location(job(container={"logStreamName": ""}, attempts=attempts)).stream == "second"


def test_custom_awslogs_group_and_region_win_over_defaults():
    container = {"logStreamName": "s", "logConfiguration": {
        "logDriver": "awslogs", "options": {"awslogs-group": "/custom", "awslogs-region": "eu-west-1"}}}
    assert log_location(job(region="eu-central-1", container=container)) == LogLocation("eu-west-1", "/custom", "s")


def test_awslogs_without_options_uses_the_batch_default_group_and_event_region():
    container = {"logStreamName": "s", "logConfiguration": {"logDriver": "awslogs"}}
    expected = LogLocation("ap-south-1", "/aws/batch/job", "s")
    assert log_location(job(region="ap-south-1", container=container)) == expected


@pytest.mark.parametrize("driver", ["splunk", "fluentd", "json-file", "awsfirelens"])
def test_another_log_driver_gives_no_cloudwatch_link(driver):
    j = job(container={"logStreamName": "s", "logConfiguration": {"logDriver": driver}})
    assert log_location(j) is None
    assert driver in missing_log_link_reason(j)


def test_no_stream_means_no_link_and_says_why():
    j = job(container={"reason": "CannotPullContainerError: nope"}, attempts=[{"container": {}}], status="FAILED",
            jobName="n", jobQueue="arn:aws:batch:us-east-1:123456789012:job-queue/q", jobDefinition="d:1")
    assert log_location(j) is None
    assert "did not start" in missing_log_link_reason(j)


def test_a_truncated_event_is_not_said_to_have_never_started():
    # A detail of only status and jobId says too little: it is not told "did not start".
    event = load_event("detail_missing_fields")
    reason = missing_log_link_reason(JobStateChange.from_event(event))
    assert reason == "No log stream: the event names none."


def test_a_job_with_a_link_needs_no_explanation():
    assert missing_log_link_reason(job(container={"logStreamName": "s"})) is None


# A region-like string, sometimes with a trailing newline or a non-ASCII digit (what a
# forged event would try), or any text at all.
_REGIONISH = st.from_regex(r"^[a-z]{2}(-[a-z]+){1,2}-\d{1,2}$") | st.text(max_size=20)


@settings(max_examples=100, deadline=None)
@given(region=_REGIONISH)
def test_a_link_only_ever_points_at_the_regions_own_console_host(region):
    for url in (cloudwatch_logs_url(LogLocation(region, "/aws/batch/job", "s")), batch_job_url(region, "abc")):
        if url is not None:
            assert region.isascii() and region.replace("-", "").isalnum() and region == region.lower()
            assert urlsplit(url).hostname == f"{region}.console.{console_domain(region)}"
            assert urlsplit(url).query.startswith(f"region={region}")


# -- multi-container (ecsProperties) jobs ------------------------------------------------------
def test_the_log_link_is_the_essential_containers_in_its_own_log_group():
    # ecs_sidecar_failed: the failed, non-essential telemetry-agent is listed first and logs
    # to /batch/telemetry; the essential render container logs to /batch/render.
    assert log_location(fixture("ecs_sidecar_failed")) == LogLocation(
        "eu-west-1", "/batch/render", "render/render/6c8e0a2b4d6f4e1a9b3c5d7e9f1a3b52")


def test_a_multi_container_job_gets_one_link_per_container_labelled_by_name():
    links = job_log_links(fixture("ecs_sidecar_failed"))
    assert [link.label for link in links] == ["Logs: telemetry-agent", "Logs: render"]
    assert links[0].url == cloudwatch_logs_url(LogLocation(
        "eu-west-1", "/batch/telemetry", "telemetry/telemetry-agent/6c8e0a2b4d6f4e1a9b3c5d7e9f1a3b52"))
    assert links[1].url == cloudwatch_logs_url(log_location(fixture("ecs_sidecar_failed")))
    assert [link.label for link in job_log_links(fixture("ecs_multicontainer_failed"))] == ["Logs: app",
                                                                                             "Logs: sidecar"]
    assert missing_log_link_reason(fixture("ecs_sidecar_failed")) is None


@pytest.mark.parametrize("name", ["ecs_multinode_node_failed", "ecs_multinode_parent_failed"])
def test_a_single_container_job_gets_one_view_logs_link(name):
    j = fixture(name)
    assert job_log_links(j) == (LogLink("View logs", cloudwatch_logs_url(log_location(j))),)


def test_a_multinode_parent_links_its_main_nodes_stream_in_the_node_ranges_log_group():
    assert log_location(fixture("ecs_multinode_parent_failed")) == LogLocation(
        "us-east-1", "/batch/ray", "ray-cluster/application/4b6d8f0a2c4e4a6b8d0f2a4c6e8b0d17")


def test_containers_without_a_cloudwatch_stream_get_no_link():
    containers = [
        {"name": "app", "logStreamName": "d/app/t"},
        {"name": "router", "essential": False, "logStreamName": "d/router/t",
         "logConfiguration": {"logDriver": "splunk"}},
        {"name": "idle", "essential": False},
        {"name": "elsewhere", "essential": False, "logStreamName": "d/elsewhere/t",
         "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-region": "us-east-1\n"}}},
    ]
    j = job(ecsProperties={"taskProperties": [{"containers": containers}]})
    assert [link.label for link in job_log_links(j)] == ["Logs: app"]


def test_a_long_container_name_is_cut_to_slacks_button_limit():
    name = "x" * 255  # ECS allows 255 characters
    j = job(ecsProperties={"taskProperties": [{"containers": [
        {"name": name, "logStreamName": "d/x/t"}, {"name": "b", "essential": False, "logStreamName": "d/b/t"}]}]})
    label = job_log_links(j)[0].label
    assert len(label) == 75 and label.startswith("Logs: xxx") and label.endswith("…")


def test_a_job_that_ran_is_never_said_not_to_have_started():
    # Attempts started (the new taskProperties shape), but the event names no stream.
    attempts = [{"startedAt": 1725973839704, "stoppedAt": 1725979278893,
                 "taskProperties": [{"containers": [{"name": "app", "exitCode": 1}]}]}]
    j = job(status="FAILED", ecsProperties={"taskProperties": [{"containers": [{"name": "app"}]}]}, attempts=attempts)
    reason = missing_log_link_reason(j)
    assert "did not start" not in reason and reason.startswith("No log stream")


@pytest.mark.parametrize("name", event_names())
def test_job_links_gives_every_link_of_a_job_at_once(name):
    j = JobStateChange.from_event(load_event(name), load_event(name)["detail-type"])
    links = job_links(j)
    assert links.logs == job_log_links(j)
    assert links.batch == batch_job_url(j.region, j.job_id)
    assert links.missing_logs == missing_log_link_reason(j)
    # A job has log links, or a reason it has none: never both, never neither.
    assert bool(links.logs) != bool(links.missing_logs)
    assert (job_log_url(j) is not None) <= bool(links.logs)
