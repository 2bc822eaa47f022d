"""Console links: partitions, log group/stream encoding, fallbacks, and never-invented links."""

import pytest

from chalicelib.event import JobStateChange
from chalicelib.links import (
    LogLocation,
    batch_job_url,
    cloudwatch_logs_url,
    console_domain,
    log_location,
    missing_log_link_reason,
)


def job(region="us-east-1", **detail):
    detail.setdefault("jobId", "a1b2c3")
    return JobStateChange.from_event(
        {"id": "e1", "source": "aws.batch", "detail-type": "Batch Job State Change", "region": region, "detail": detail}
    )


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


@pytest.mark.parametrize("region", ["evil.example/x?", "", "US-EAST-1", "us-east-1.attacker.com"])
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
    assert log_location(job(region="ap-south-1", container=container)) == LogLocation("ap-south-1", "/aws/batch/job", "s")


@pytest.mark.parametrize("driver", ["splunk", "fluentd", "json-file", "awsfirelens"])
def test_another_log_driver_gives_no_cloudwatch_link(driver):
    j = job(container={"logStreamName": "s", "logConfiguration": {"logDriver": driver}})
    assert log_location(j) is None
    assert driver in missing_log_link_reason(j)


def test_no_stream_means_no_link_and_says_why():
    j = job(container={"reason": "CannotPullContainerError: nope"}, attempts=[{"container": {}}])
    assert log_location(j) is None
    assert "did not start" in missing_log_link_reason(j)


def test_a_job_with_a_link_needs_no_explanation():
    assert missing_log_link_reason(job(container={"logStreamName": "s"})) is None
