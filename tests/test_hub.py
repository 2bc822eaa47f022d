"""The hub end to end: one app in account A notifying for member account B, AWS all moto.

moto keeps each account's resources apart and maps an assumed role's credentials to the role's
account (checked here: ``test_moto_maps_assumed_role_credentials_to_the_roles_account``), so a
log or a job made only in B is found only through B's member role. The app is driven as on
Lambda: forwarded events through chalice.test (the dev stage: webhook from SSM, log tail on),
clicks through the real actions route (tests/test_action_handlers.py's app and signing).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from app import app
from chalicelib import notify
from chalicelib.composing.account_label import with_account_label
from chalicelib.composing.messages import build_job_state_message
from chalicelib.core import clients, config, member_roles
from chalicelib.core.config import ACCOUNT_NAMES, MEMBER_ROLE_ARN, ConfigError, load_hub_settings
from chalicelib.deciding.routing import parse_route_table
from chalicelib.interactions.endpoint import Registry
from chalicelib.interactions.handlers import register_all
from chalicelib.reading.event import JobStateChange
from tests.conftest import PROD_CHANNEL, TEST_CHANNEL, load_event
from tests.state_fixtures import STATE_TABLE, Serialized, create_state_table
from tests.test_action_handlers import PATH, SECRET, blocks_for, make_app
from tools import sign_click
from tools.slack_standin import BOT_USER, MEMBER, SlackStandIn

HUB, MEMBER_ACCOUNT = "123456789012", "210987654321"  # A: moto's own account; B: a member
REGION = "us-east-1"
ROLE_TEMPLATE = "arn:aws:iam::{account}:role/batch-notify-member"
NAMES = f"{HUB}=hub,{MEMBER_ACCOUNT}=staging"
GROUP = "/aws/batch/job"
STREAM = "nightly-etl/default/abeb2b9a53a1dc5d73f28f5ae029cd0c"  # ec2_failed's
LOG_LINE = "step 3 of 7: disk full on /scratch"


def member_session(account: str = MEMBER_ACCOUNT) -> Any:
    """A boto3 session acting in ``account`` (moto: an assumed role's credentials are that account's)."""
    answer = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/test-setup", RoleSessionName="test-setup")["Credentials"]
    return boto3.session.Session(aws_access_key_id=answer["AccessKeyId"],
                                 aws_secret_access_key=answer["SecretAccessKey"],
                                 aws_session_token=answer["SessionToken"], region_name=REGION)


def forwarded(name: str = "ec2_failed", account: str = MEMBER_ACCOUNT, region: str = REGION) -> dict[str, Any]:
    """A fixture event as the hub's bus gets it from a member: every ARN and the envelope in ``account``."""
    text = json.dumps(load_event(name)).replace(HUB, account).replace(f":{REGION}:", f":{region}:")
    event = json.loads(text)
    event["region"] = region
    return event


def make_log(session: Any, messages: tuple[str, ...] = (LOG_LINE,)) -> None:
    logs = session.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName=STREAM)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=GROUP, logStreamName=STREAM,
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def blocks_text(request: Any) -> str:
    return json.dumps(request.body["blocks"], ensure_ascii=False)


def credentials_of(account: str) -> clients.Credentials:
    found = member_roles.reach(account).credentials
    assert found is not None
    return found


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, found: clients.Credentials) -> None:
    # The app's own log lines (botocore's DEBUG lines carry the token in a header: off on Lambda).
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "batch_notify")
    for secret in (found.access_key_id, found.secret_access_key, found.session_token):
        assert secret not in logged


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def dev_stage(aws: None, webhook: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> SlackStandIn:
    """The dev stage as deployed: its webhook in account A's SSM, the hub configured."""
    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/batch-notify/dev/slack-webhook-url",
                                                          Value=webhook.webhook_url, Type="SecureString")
    monkeypatch.setenv(MEMBER_ROLE_ARN, ROLE_TEMPLATE)
    monkeypatch.setenv(ACCOUNT_NAMES, NAMES)
    config.reset()
    return webhook


def on_job_failed(event: dict[str, Any], stage: str = "dev") -> Any:
    environ = os.environ  # chalice.test swaps os.environ during an invocation: put back the same object
    try:
        with Client(app, stage_name=stage) as client:
            return client.lambda_.invoke("on_job_failed", event)
    finally:
        os.environ = environ  # noqa: B003


class AssumeRoleCalls:
    """Records every AssumeRole request the app's STS client sends (a botocore hook, no patching)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        sts = clients.client("sts", member_roles.STS_CONFIG)
        sts.meta.events.register("before-parameter-build.sts.AssumeRole",
                                 lambda params, **_: self.requests.append(dict(params)))


# -- moto, as these tests rely on it ---------------------------------------------------------------

def test_moto_maps_assumed_role_credentials_to_the_roles_account(aws: None) -> None:
    session = member_session()
    assert session.client("sts").get_caller_identity()["Account"] == MEMBER_ACCOUNT
    make_log(session)
    assert boto3.client("logs", region_name=REGION).describe_log_groups()["logGroups"] == []  # A has none


# -- the log tail ---------------------------------------------------------------------------------

def test_a_forwarded_failure_shows_the_log_read_in_its_account_through_the_member_role(
        dev_stage: SlackStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="batch_notify")
    make_log(member_session())  # the log exists in B only
    calls = AssumeRoleCalls()
    on_job_failed(forwarded())
    on_job_failed(forwarded("fargate_failed"))

    first = blocks_text(dev_stage.requests[0])
    assert LOG_LINE in first
    assert f"Account: staging ({MEMBER_ACCOUNT}) · {REGION}" in first
    # One AssumeRole for both events, named for the app and bounded.
    [request] = calls.requests
    assert request == {"RoleArn": f"arn:aws:iam::{MEMBER_ACCOUNT}:role/batch-notify-member",
                       "RoleSessionName": "batch-notify", "DurationSeconds": 900}
    assert member_roles.assumed_count() == 1
    assert ("logs", REGION, MEMBER_ACCOUNT) in clients.made_for_members()
    assert_no_secret_logged(caplog, credentials_of(MEMBER_ACCOUNT))


def test_a_same_account_event_makes_no_sts_call_and_no_member_client(
        dev_stage: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cold path of a stage without the hub: the event's account is never compared.
    monkeypatch.delenv(MEMBER_ROLE_ARN)
    monkeypatch.delenv(ACCOUNT_NAMES)
    config.reset()
    make_log(boto3.session.Session(region_name=REGION))
    on_job_failed(load_event("ec2_failed"))

    assert LOG_LINE in blocks_text(dev_stage.requests[0])
    assert "Account:" not in blocks_text(dev_stage.requests[0])  # no hub: the message as it always was
    assert sorted(service for service, _ in clients.made()) == ["logs", "ssm"]
    assert clients.made_for_members() == () and member_roles.assumed_count() == 0


class LambdaContext:
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{HUB}:function:batch-notify-dev-on_job_failed"


def test_with_the_hub_a_noted_context_spares_the_sts_call_for_the_apps_own_account(dev_stage: SlackStandIn) -> None:
    make_log(boto3.session.Session(region_name=REGION))
    member_roles.note_context(LambdaContext())
    on_job_failed(load_event("ec2_failed"))

    assert LOG_LINE in blocks_text(dev_stage.requests[0])
    assert "sts" not in [service for service, _ in clients.made()]


def test_the_handler_notes_its_own_account_from_the_lambda_context_it_is_given(
        dev_stage: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    # As Lambda calls it: the wrapped handler with the event and a context, no chalice.test.
    monkeypatch.setenv("SLACK_WEBHOOK_URL_PARAM", "/batch-notify/dev/slack-webhook-url")
    monkeypatch.setenv("LOG_TAIL_LINES", "20")
    config.reset()
    make_log(boto3.session.Session(region_name=REGION))
    import app as app_module

    app_module.on_job_failed(load_event("ec2_failed"), LambdaContext())

    assert LOG_LINE in blocks_text(dev_stage.requests[0])
    assert member_roles.own_account(ask=False) == HUB
    assert "sts" not in [service for service, _ in clients.made()]


def test_without_member_role_the_tail_says_the_job_is_in_another_account(
        dev_stage: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMBER_ROLE_ARN)
    config.reset()
    make_log(member_session())
    on_job_failed(forwarded())

    shown = blocks_text(dev_stage.requests[0])
    assert f"the job is in account {MEMBER_ACCOUNT} (staging), not this app's: set MEMBER_ROLE_ARN" in shown
    assert LOG_LINE not in shown
    assert member_roles.assumed_count() == 0 and clients.made_for_members() == ()  # nothing reached B


class DeniedSts:
    """An STS client whose AssumeRole is denied, as for a member without the role (or not trusting us)."""

    DETAIL = "User: arn:aws:sts::123456789012:assumed-role/x is not authorized (secret-ish detail)"

    def __init__(self) -> None:
        self.assumed = 0

    def get_caller_identity(self) -> dict[str, Any]:
        return {"Account": HUB}

    def assume_role(self, **_: Any) -> dict[str, Any]:
        self.assumed += 1
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": self.DETAIL},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "AssumeRole")


def test_a_denied_member_role_leaves_a_plain_note_and_no_detail_in_the_logs(
        dev_stage: SlackStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="batch_notify")
    denied = DeniedSts()
    clients.use_client("sts", denied)
    on_job_failed(forwarded())

    shown = blocks_text(dev_stage.requests[0])
    assert f"the job is in account {MEMBER_ACCOUNT} (staging), and could not assume" in shown
    assert "access denied" in shown and "deploy/member-account.yaml" in shown
    assert denied.assumed == 1
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "batch_notify")
    assert detail_absent(logged)


def detail_absent(text: str) -> bool:
    """Neither AWS's message nor a part of it: errors are said by their code."""
    return DeniedSts.DETAIL not in text and "secret-ish" not in text


# -- credentials: cached, renewed near their end, one AssumeRole under concurrency -------------------------

def test_credentials_are_kept_until_five_minutes_before_they_end(dev_stage: SlackStandIn) -> None:
    first = credentials_of(MEMBER_ACCOUNT)
    with member_roles.use_clock(lambda: first.expires_at - 400):
        assert credentials_of(MEMBER_ACCOUNT) is first
    assert member_roles.assumed_count() == 1
    with member_roles.use_clock(lambda: first.expires_at - 200):
        renewed = credentials_of(MEMBER_ACCOUNT)
    assert member_roles.assumed_count() == 2
    assert renewed.access_key_id != first.access_key_id
    assert "Secret" not in repr(renewed) and renewed.secret_access_key not in repr(renewed)


def test_threads_needing_the_same_account_at_once_assume_its_role_once(dev_stage: SlackStandIn) -> None:
    found: list[Any] = []
    threads = [threading.Thread(target=lambda: found.append(member_roles.reach(MEMBER_ACCOUNT))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert member_roles.assumed_count() == 1
    assert {reach.credentials.access_key_id for reach in found} == {credentials_of(MEMBER_ACCOUNT).access_key_id}


def test_a_member_client_is_made_from_the_one_session_and_kept_with_its_credentials(dev_stage: SlackStandIn) -> None:
    found = credentials_of(MEMBER_ACCOUNT)
    batch_config = clients.ClientConfig(connect_timeout=1, read_timeout=1, attempts=1)
    made = clients.client("batch", batch_config, region=REGION, credentials=found)
    assert clients.client("batch", batch_config, region=REGION, credentials=found) is made
    assert clients.made() == (("sts", None),)  # the own account's clients: just STS, for AssumeRole
    assert clients.session_made()


# -- actions: Retry through the member role, refusals ---------------------------------------------------

class MemberBatch:
    """Account B's Batch in moto: one queue, one definition, one job; the state table in A."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        session = member_session()
        iam = session.client("iam")
        role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.batch = session.client("batch", region_name=REGION)
        env = self.batch.create_compute_environment(computeEnvironmentName="member-ce", type="UNMANAGED",
                                                    state="ENABLED", serviceRole=role)
        self.queue = self.batch.create_job_queue(
            jobQueueName="etl-queue", state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])["jobQueueArn"]
        definition = self.batch.register_job_definition(
            jobDefinitionName="nightly-etl", type="container",
            containerProperties={"image": "busybox", "command": ["etl"],
                                 "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                          {"type": "MEMORY", "value": "2048"}]})
        self.job_id = self.batch.submit_job(jobName="nightly-etl", jobQueue=self.queue,
                                            jobDefinition=definition["jobDefinitionArn"])["jobId"]
        self.job_arn = f"arn:aws:batch:{REGION}:{MEMBER_ACCOUNT}:job/{self.job_id}"
        create_state_table(boto3.client("dynamodb", region_name=REGION))
        clients.use_client("dynamodb", Serialized(boto3.client("dynamodb", region_name=REGION)))
        self.registry = Registry()
        register_all(self.registry)
        self.app = make_app(self.registry)

    def jobs(self, batch: Any) -> list[str]:
        listed = batch.list_jobs(jobQueue="etl-queue", filters=[{"name": "JOB_NAME", "values": ["nightly-etl"]}])
        return [job["jobId"] for job in listed["jobSummaryList"]]

    def click(self, action_id: str = "retry_job", option: str | None = None) -> str:
        ts = self.slack.post_as(BOT_USER, TEST_CHANNEL, "Job failed: nightly-etl")
        url = self.slack.response_url(TEST_CHANNEL, ts, user=MEMBER)
        payload = sign_click.build_click(action_id, self.job_arn, user=MEMBER, message_ts=ts, option=option,
                                         blocks=blocks_for(self.job_arn), response_url=url)
        body = sign_click.form_body(payload)
        environ = os.environ
        try:
            with Client(self.app, stage_name="local") as client:
                assert client.http.post(PATH, headers=sign_click.sign(body, SECRET), body=body).status_code == 200
        finally:
            os.environ = environ  # noqa: B003
        return ts

    def ephemerals(self) -> list[str]:
        return [e["text"] for e in self.slack.ephemerals]


@pytest.fixture
def member_batch(aws: None, bot: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> MemberBatch:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("NOTIFY_STATE_TABLE", STATE_TABLE)
    monkeypatch.setenv("SLACK_ACTIONS_ALLOW", MEMBER)
    monkeypatch.setenv(MEMBER_ROLE_ARN, ROLE_TEMPLATE)
    monkeypatch.setenv(ACCOUNT_NAMES, NAMES)
    config.reset()
    return MemberBatch(bot)


def test_a_retry_click_submits_the_job_again_in_its_account_through_the_member_role(
        member_batch: MemberBatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="batch_notify")
    calls = AssumeRoleCalls()
    ts = member_batch.click()

    in_b = member_batch.jobs(member_batch.batch)
    assert len(in_b) == 2, member_batch.ephemerals()  # the original and its retry, both in B
    assert member_batch.ephemerals() == []
    assert len(calls.requests) == 1  # DescribeJobs and SubmitJob (with its tags) on one AssumeRole
    new_id = next(job for job in in_b if job != member_batch.job_id)
    assert new_id in str(next(m for m in member_batch.slack.channel_view(TEST_CHANNEL) if m.ts == ts).blocks)
    with pytest.raises(ClientError):  # account A has no such queue: nothing was submitted there
        member_batch.jobs(boto3.client("batch", region_name=REGION))
    assert_no_secret_logged(caplog, credentials_of(MEMBER_ACCOUNT))


def test_without_member_role_a_click_is_refused_plainly_and_nothing_reaches_the_member(
        member_batch: MemberBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMBER_ROLE_ARN)
    config.reset()
    # A's Batch: asked (the account was not compared yet), it finds nothing.
    clients.use_client("batch", Serialized(boto3.client("batch", region_name=REGION)))
    member_batch.click()

    [text] = member_batch.ephemerals()
    assert f"the job is in account {MEMBER_ACCOUNT} (staging), not this app's: set MEMBER_ROLE_ARN" in text
    assert "Nothing was done" in text
    assert member_batch.jobs(member_batch.batch) == [member_batch.job_id]
    assert member_roles.assumed_count() == 0 and clients.made_for_members() == ()


def test_a_denied_member_role_refuses_the_click_plainly(member_batch: MemberBatch) -> None:
    clients.use_client("sts", DeniedSts())
    member_batch.click("terminate_job")

    [text] = member_batch.ephemerals()
    assert "could not assume" in text and "access denied" in text and "Nothing was done" in text
    assert detail_absent(text)
    assert clients.made_for_members() == ()


# -- routes by account and region; the account line -------------------------------------------------

ROUTES = {
    "accounts": {MEMBER_ACCOUNT: "file-name"},
    "routes": [
        {"name": "staging", "match": {"account": "staging"}, "channel": TEST_CHANNEL},
        {"name": "europe", "match": {"region": "eu-*"}, "channel": TEST_CHANNEL, "mention": ["U0EUROPE1"]},
        {"name": "default"},
    ],
}


def test_routes_match_the_jobs_account_by_name_or_id_and_its_region_by_glob() -> None:
    table = parse_route_table(ROUTES, account_names=((MEMBER_ACCOUNT, "staging"),))
    assert table.decide("q", "j", "FAILED", account=MEMBER_ACCOUNT, region=REGION).route == "staging"
    assert table.decide("q", "j", "FAILED", account=HUB, region="eu-west-1").route == "europe"
    assert table.decide("q", "j", "FAILED", account=HUB, region=REGION).route == "default"
    assert table.decide("q", "j", "FAILED").route == "default"  # unknown account and region: no such route
    # Without ACCOUNT_NAMES, the file's accounts name them; with it, only its names count.
    assert parse_route_table({**ROUTES, "routes": [{"name": "b", "match": {"account": "file-name"}},
                                                   {"name": "d"}]}).routes[0].accounts == (MEMBER_ACCOUNT,)
    with pytest.raises(ConfigError, match=r"'match\.account'.*'staging'.*ACCOUNT_NAMES"):
        parse_route_table(ROUTES)


def test_a_forwarded_event_is_routed_by_its_account_in_the_prod_stage(
        aws: None, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/batch-notify/prod/slack-bot-token",
                                                          Value="xoxb-test-token", Type="SecureString")
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    monkeypatch.setenv("NOTIFY_ROUTES", str(routes))
    monkeypatch.setenv(ACCOUNT_NAMES, NAMES)
    monkeypatch.setenv("LOG_TAIL_LINES", "0")
    config.reset()
    for event in (forwarded(), forwarded(account=HUB, region="eu-west-1"), load_event("ec2_failed")):
        on_job_failed(event, stage="prod")

    channels = [(r.body["channel"], "U0EUROPE1" in r.body["text"]) for r in slack.requests]
    assert channels == [(TEST_CHANNEL, False), (TEST_CHANNEL, True), (PROD_CHANNEL, False)]
    assert f"Account: staging ({MEMBER_ACCOUNT})" in blocks_text(slack.requests[0])
    assert "Account: hub (123456789012) · eu-west-1" in blocks_text(slack.requests[1])


def test_decide_threads_the_events_account_and_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [{"name": "b", "match": {"account": MEMBER_ACCOUNT}, "drop": True},
                                             {"name": "d"}]}))
    monkeypatch.setenv("NOTIFY_ROUTES", str(routes))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")
    config.reset()
    assert notify.decide(JobStateChange.from_event(forwarded())).reason == "route 'b' drops these jobs"
    assert notify.decide(JobStateChange.from_event(load_event("ec2_failed"))).route == "d"


def test_a_bad_member_role_arn_fails_the_invocation_naming_it(webhook: SlackStandIn,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMBER_ROLE_ARN, "arn:aws:iam::123456789012:role/batch-notify-member")
    config.reset()
    with pytest.raises(ConfigError, match=MEMBER_ROLE_ARN):
        on_job_failed(load_event("ec2_failed"), stage="local")
    assert webhook.requests == []


def test_the_account_line_is_escaped_bounded_and_only_with_the_hub() -> None:
    event = forwarded()
    event["account"] = "<!channel>*bold*" + "9" * 500
    job = JobStateChange.from_event(event)
    built = build_job_state_message(job)
    assert with_account_label(built, job, (), hub=False) is built
    blocks = with_account_label(built, job, (), hub=True).to_dict()["blocks"]
    [line] = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]
              if e["text"].startswith("Account: ")]
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line
    assert len(line) < 60 and line.endswith(f" · {REGION}")
    assert blocks[:-2] == built.to_dict()["blocks"][:-1]  # the rest as built, the line before the last context
    again = with_account_label(with_account_label(built, job, (), hub=True), job, (), hub=True)
    assert json.dumps(again.to_dict()).count("Account: ") == 1


# -- the settings: hypothesis over ACCOUNT_NAMES and MEMBER_ROLE_ARN -----------------------------------------

ACCOUNT_IDS = st.from_regex(r"[0-9]{12}", fullmatch=True)
READABLE = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="=,"),
                   min_size=1, max_size=64).map(str.strip).filter(lambda n: n and n.isprintable()
                                                                   and not (len(n) == 12 and n.isdigit()))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(ACCOUNT_IDS, READABLE, max_size=6).filter(lambda d: len(set(d.values())) == len(d)))
def test_account_names_round_trip(names: dict[str, str]) -> None:
    raw = " , ".join(f"{account} = {name}" for account, name in names.items())
    assert load_hub_settings({ACCOUNT_NAMES: raw}).names == tuple(names.items())


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80))
def test_any_account_names_value_is_taken_whole_or_refused_naming_the_variable(raw: str) -> None:
    try:
        names = load_hub_settings({ACCOUNT_NAMES: raw}).names
    except ConfigError as error:
        assert str(error).startswith(ACCOUNT_NAMES)
        return
    assert all(len(account) == 12 and account.isdigit() and name.isprintable() for account, name in names)


ROLE_NAMES = st.from_regex(r"(/[A-Za-z0-9_+=,.@-]{1,10})*/[A-Za-z0-9_+=,.@-]{1,64}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["aws", "aws-cn", "aws-us-gov", "aws-iso-b"]), ROLE_NAMES, ACCOUNT_IDS)
def test_a_member_role_template_of_any_partition_fills_in_the_account(partition: str, name: str,
                                                                     account: str) -> None:
    template = f"arn:{partition}:iam::{{account}}:role{name}"
    hub = load_hub_settings({MEMBER_ROLE_ARN: template})
    assert hub.role_arn(account) == f"arn:{partition}:iam::{account}:role{name}"
    assert hub.role_arn("not-an-account") is None


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80) | st.builds(lambda s: f"arn:aws:iam::{{account}}:role/{s}", st.text(max_size=20)))
def test_any_member_role_value_is_a_role_arn_template_or_refused_naming_the_variable(raw: str) -> None:
    try:
        template = load_hub_settings({MEMBER_ROLE_ARN: raw}).member_role_arn
    except ConfigError as error:
        assert str(error).startswith(f"{MEMBER_ROLE_ARN}=")
        return
    assert template is None or (template.count("{account}") == 1 and template.split(":")[4] == "{account}")
