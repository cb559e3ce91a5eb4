#!/usr/bin/env python3
"""Deploy the data resources of infra/template.yaml into the local AWS emulator.

infra/template.yaml is the only definition of the table, the queues and the bucket.
This script does not repeat any of it: it loads the template, keeps the data
resources (DynamoDB tables, SQS queues and queue policies, S3 buckets and bucket
policies) plus whatever they reference (other resources, Parameters, Conditions,
Mappings) and the Outputs that only need those, and deploys that subset through
the emulator's CloudFormation API as stack `fanout-local`.

The Lambda functions, the HTTP API and the ECS worker service are left out: LocalStack's
community edition has no HTTP API and runs Lambda only in Docker, and the Rust
gateway/workers run them locally.

Steps:
  1. build the subset (DeletionPolicy/UpdateReplacePolicy forced to Delete: local
     data is disposable, and a re-deploy must not leave orphans behind);
  2. stack missing -> create; same template already deployed -> keep it;
     different template or a failed stack -> empty its buckets, delete, create;
  3. compare every data resource with its template properties, through the
     service APIs (describe_table, get_queue_attributes, get_bucket_*). Where the
     emulator's CloudFormation ignored a property (LocalStack 2026.3.0: S3 lifecycle
     rules and bucket-key encryption, DynamoDB point-in-time recovery) it is applied
     through the service API, and reported. Anything still different afterwards
     fails the deploy;
  4. write .fanout/local.env: AWS_* settings for the emulator plus every variable
     of Globals.Function.Environment.Variables, resolved to local values.

Usage: .venv/bin/python localstack/deploy_stack.py [--stack-name NAME] [--parameter K=V ...]
(localstack/deploy.sh runs it with the venv's Python.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import boto3
import botocore.exceptions
import botocore.parsers
import yaml
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent

# Resource types deployed locally. Everything they reference comes along.
DATA_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
}

# Stack states in which a stack is settled and usable.
STABLE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}

# SQS queue properties (CloudFormation name == SQS attribute name) compared as values.
SQS_SCALAR_ATTRIBUTES = (
    "VisibilityTimeout",
    "ReceiveMessageWaitTimeSeconds",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)

# Properties that the checks below understand, per type; others are reported as unchecked.
CHECKED_PROPERTIES = {
    "AWS::DynamoDB::Table": {
        "TableName",
        "BillingMode",
        "AttributeDefinitions",
        "KeySchema",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "TimeToLiveSpecification",
        "PointInTimeRecoverySpecification",
        "SSESpecification",
    },
    "AWS::SQS::Queue": {"QueueName", "RedrivePolicy", "RedriveAllowPolicy", *SQS_SCALAR_ATTRIBUTES},
    "AWS::S3::Bucket": {
        "BucketName",
        "LifecycleConfiguration",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "BucketEncryption",
        "VersioningConfiguration",
    },
}


class DeployError(Exception):
    """A problem that ends the deploy with a message and exit status 1."""


# ------------------------------------------------------------------------------------
# Template subset
# ------------------------------------------------------------------------------------


def load_template(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            template = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as e:
        raise DeployError(
            f"{path}: {e.problem} -- the template must use long-form intrinsics "
            "(Ref:, Fn::GetAtt:, Fn::Sub:), not YAML tags like !Ref"
        ) from e
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise DeployError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return template


def _sub_names(text: str) -> set[str]:
    """Names used by ${Name} / ${Name.Attr} in an Fn::Sub string (${!Literal} skipped)."""
    names = set()
    for m in re.finditer(r"\$\{([^}]+)\}", text):
        inner = m.group(1).strip()
        if inner.startswith("!"):
            continue
        names.add(inner.split(".", 1)[0])
    return names


def references(node: Any) -> tuple[set[str], set[str], set[str]]:
    """(names of resources/parameters, conditions, mappings) that a template node uses."""
    names: set[str] = set()
    conditions: set[str] = set()
    mappings: set[str] = set()

    def walk(n: Any) -> None:
        if isinstance(n, list):
            for item in n:
                walk(item)
            return
        if not isinstance(n, dict):
            return
        for key, value in n.items():
            if key == "Ref" and isinstance(value, str):
                names.add(value)
            elif key == "Fn::GetAtt":
                if isinstance(value, str):
                    names.add(value.split(".", 1)[0])
                elif isinstance(value, list) and value:
                    names.add(str(value[0]))
                    walk(value[1:])
            elif key == "Fn::Sub":
                if isinstance(value, str):
                    names.update(_sub_names(value))
                elif isinstance(value, list) and value:
                    local_vars = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
                    names.update(_sub_names(str(value[0])) - set(local_vars))
                    walk(local_vars)
            elif key == "Fn::If" and isinstance(value, list) and value:
                conditions.add(str(value[0]))
                walk(value[1:])
            elif key == "Condition" and isinstance(value, str):
                conditions.add(value)
            elif key == "Fn::FindInMap" and isinstance(value, list) and value:
                if isinstance(value[0], str):
                    mappings.add(value[0])
                walk(value)
            else:
                walk(value)

    walk(node)
    return {n for n in names if not n.startswith("AWS::")}, conditions, mappings


def data_subset(template: dict[str, Any]) -> dict[str, Any]:
    """The deployable data part of the template (plain CloudFormation, no Transform)."""
    resources = template["Resources"]
    parameters = template.get("Parameters") or {}
    all_conditions = template.get("Conditions") or {}
    all_mappings = template.get("Mappings") or {}

    keep = [name for name, res in resources.items() if res.get("Type") in DATA_TYPES]
    if not keep:
        raise DeployError("the template has no data resources to deploy")

    kept_resources: set[str] = set()
    kept_params: set[str] = set()
    kept_conditions: set[str] = set()
    kept_mappings: set[str] = set()
    todo = [("resource", name) for name in keep]
    while todo:
        kind, name = todo.pop()
        if kind == "resource":
            if name in kept_resources:
                continue
            res = resources[name]
            if str(res.get("Type", "")).startswith("AWS::Serverless::"):
                raise DeployError(f"data resource depends on SAM resource {name}; not deployable locally")
            kept_resources.add(name)
            node = {k: res.get(k) for k in ("Properties", "Condition", "DependsOn")}
            depends = res.get("DependsOn") or []
            for dep in [depends] if isinstance(depends, str) else depends:
                todo.append(("resource", dep))
        else:  # condition
            if name in kept_conditions:
                continue
            if name not in all_conditions:
                raise DeployError(f"unknown condition {name}")
            kept_conditions.add(name)
            node = all_conditions[name]
        names, conds, maps = references(node)
        for n in names:
            if n in resources:
                todo.append(("resource", n))
            elif n in parameters:
                kept_params.add(n)
            else:
                raise DeployError(f"{name} references unknown name {n}")
        todo.extend(("condition", c) for c in conds)
        kept_mappings.update(maps)

    out_resources = {}
    for name in resources:
        if name in kept_resources:
            res = json.loads(json.dumps(resources[name]))  # deep copy
            res["DeletionPolicy"] = "Delete"
            res["UpdateReplacePolicy"] = "Delete"
            out_resources[name] = res

    outputs = {}
    for name, out in (template.get("Outputs") or {}).items():
        names, conds, _ = references(out)
        if names <= kept_resources | kept_params and conds <= kept_conditions:
            outputs[name] = out

    subset: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Fanout local data stack: data resources of infra/template.yaml "
        "(generated by localstack/deploy_stack.py)",
    }
    if kept_params:
        subset["Parameters"] = {n: parameters[n] for n in parameters if n in kept_params}
    if kept_mappings:
        subset["Mappings"] = {n: all_mappings[n] for n in all_mappings if n in kept_mappings}
    if kept_conditions:
        subset["Conditions"] = {n: all_conditions[n] for n in all_conditions if n in kept_conditions}
    subset["Resources"] = out_resources
    if outputs:
        subset["Outputs"] = outputs
    return subset


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------------------------
# Emulator clients and stack lifecycle
# ------------------------------------------------------------------------------------


class Aws:
    def __init__(self, endpoint: str, region: str):
        self.endpoint = endpoint
        self.region = region
        cfg = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"},
        )
        kw = dict(
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=cfg,
        )
        self.cfn = boto3.client("cloudformation", **kw)
        self.ddb = boto3.client("dynamodb", **kw)
        self.sqs = boto3.client("sqs", **kw)
        self.s3 = boto3.client("s3", **kw)


def describe_stack(aws: Aws, stack: str) -> dict[str, Any] | None:
    try:
        stacks = aws.cfn.describe_stacks(StackName=stack)["Stacks"]
    except botocore.exceptions.ClientError as e:
        if "does not exist" in str(e):
            return None
        raise
    live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return live[0] if live else None


def wait_settled(aws: Aws, stack: str, timeout: float = 300) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        s = describe_stack(aws, stack)
        if s is None or not s["StackStatus"].endswith("_IN_PROGRESS"):
            return s
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack} still {s['StackStatus']} after {timeout:.0f}s")
        time.sleep(1)


def stack_resources(aws: Aws, stack: str) -> dict[str, dict[str, Any]]:
    """Logical id -> stack resource (entries without a logical id, which some emulators
    return for resource types they do not implement, are dropped)."""
    out = {}
    for r in aws.cfn.describe_stack_resources(StackName=stack)["StackResources"]:
        if r.get("LogicalResourceId"):
            out[r["LogicalResourceId"]] = r
    return out


def print_failure_events(aws: Aws, stack: str) -> None:
    try:
        events = aws.cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except botocore.exceptions.ClientError:
        return
    for ev in events[:20]:
        if "FAILED" in ev.get("ResourceStatus", ""):
            print(
                f"  {ev.get('LogicalResourceId')}: {ev.get('ResourceStatus')} {ev.get('ResourceStatusReason', '')}",
                file=sys.stderr,
            )


def empty_bucket(aws: Aws, bucket: str) -> None:
    try:
        for page in aws.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            items = [
                {"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for i in range(0, len(items), 1000):
                aws.s3.delete_objects(Bucket=bucket, Delete={"Objects": items[i : i + 1000], "Quiet": True})
        uploads = aws.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for u in uploads:
            aws.s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchBucket":
            raise


def remove_leftovers(aws: Aws, resources: dict[str, dict[str, Any]]) -> None:
    """Delete data resources a stack deletion left behind (best effort, by physical id)."""
    for r in resources.values():
        rtype, pid = r.get("ResourceType"), r.get("PhysicalResourceId")
        if not pid:
            continue
        try:
            if rtype == "AWS::DynamoDB::Table":
                aws.ddb.delete_table(TableName=pid)
            elif rtype == "AWS::SQS::Queue":
                name = pid.rstrip("/").rsplit("/", 1)[-1]
                aws.sqs.delete_queue(QueueUrl=aws.sqs.get_queue_url(QueueName=name)["QueueUrl"])
            elif rtype == "AWS::S3::Bucket":
                empty_bucket(aws, pid)
                aws.s3.delete_bucket(Bucket=pid)
            else:
                continue
            print(f"deploy: removed leftover {rtype} {pid}")
        except botocore.exceptions.ClientError:
            pass  # already gone


def delete_stack(aws: Aws, stack: str) -> None:
    resources = stack_resources(aws, stack)
    for r in resources.values():
        if r.get("ResourceType") == "AWS::S3::Bucket" and r.get("PhysicalResourceId"):
            empty_bucket(aws, r["PhysicalResourceId"])
    try:
        aws.cfn.delete_stack(StackName=stack)
    except (botocore.exceptions.ClientError, botocore.parsers.ResponseParserError) as e:
        # An emulator may answer DeleteStack with the error of a resource that was already
        # removed by hand (e.g. a deleted table), after dropping the stack record.
        print(f"deploy: warning: the emulator's DeleteStack failed ({str(e).splitlines()[0][:200]})")
    deadline = time.monotonic() + 300
    while True:
        s = describe_stack(aws, stack)
        if s is None:
            break
        if s["StackStatus"] == "DELETE_FAILED":
            print_failure_events(aws, stack)
            raise DeployError(
                f"could not delete stack {stack}; restart the emulator (make emulator-down emulator-up) "
                "or deploy under another --stack-name"
            )
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack} not deleted after 300s")
        time.sleep(1)
    remove_leftovers(aws, resources)


def create_stack(aws: Aws, stack: str, body: str, params: dict[str, str]) -> None:
    aws.cfn.create_stack(
        StackName=stack,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        OnFailure="DELETE",
        Tags=[{"Key": "fanout:purpose", "Value": "local-emulator"}],
    )
    s = wait_settled(aws, stack)
    status = s["StackStatus"] if s else "DELETED (creation failed)"
    if status not in STABLE_OK:
        if s:
            print_failure_events(aws, stack)
        raise DeployError(f"stack {stack} ended in {status}")


def deployed_template(aws: Aws, stack: str) -> Any:
    body = aws.cfn.get_template(StackName=stack)["TemplateBody"]
    if isinstance(body, str):
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            return yaml.safe_load(body)
    return body


def deployed_parameters(stack_desc: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack_desc.get("Parameters") or []}


def ensure_stack(aws: Aws, stack: str, subset: dict[str, Any], params: dict[str, str], force: bool) -> str:
    """Create, keep or replace the stack; returns what was done."""
    body = canonical(subset)
    existing = wait_settled(aws, stack)
    if existing is not None:
        status = existing["StackStatus"]
        same = (
            status in STABLE_OK
            and canonical(deployed_template(aws, stack)) == body
            and all(deployed_parameters(existing).get(k) == v for k, v in params.items())
        )
        if same and not force:
            return "unchanged"
        why = "forced" if force else ("template changed" if status in STABLE_OK else status)
        print(f"deploy: replacing stack {stack} ({why}): deleting it")
        delete_stack(aws, stack)
        create_stack(aws, stack, body, params)
        return "replaced"
    create_stack(aws, stack, body, params)
    return "created"


# ------------------------------------------------------------------------------------
# Resolving template values against the deployed stack
# ------------------------------------------------------------------------------------


class Resolver:
    """Evaluates the intrinsics used by the data resources, with deployed values."""

    def __init__(self, aws: Aws, stack: str, template: dict[str, Any], params: dict[str, str]):
        self.aws = aws
        self.stack = stack
        self.resources = template["Resources"]
        self.params = params
        self.physical = {k: r.get("PhysicalResourceId") for k, r in stack_resources(aws, stack).items()}
        self._account: str | None = None

    def type_of(self, name: str) -> str:
        return self.resources[name]["Type"]

    def account_id(self) -> str:
        if self._account is None:
            for name in self.physical:
                if self.type_of(name) == "AWS::SQS::Queue":
                    self._account = self.queue_attr(name, "QueueArn").split(":")[4]
                    break
            else:
                self._account = boto3.client(
                    "sts",
                    endpoint_url=self.aws.endpoint,
                    region_name=self.aws.region,
                    aws_access_key_id="test",
                    aws_secret_access_key="test",
                ).get_caller_identity()["Account"]
        return self._account

    def pseudo(self, name: str) -> Any:
        table: dict[str, Callable[[], Any]] = {
            "AWS::Region": lambda: self.aws.region,
            "AWS::StackName": lambda: self.stack,
            "AWS::Partition": lambda: "aws",
            "AWS::URLSuffix": lambda: "amazonaws.com",
            "AWS::AccountId": self.account_id,
        }
        if name not in table:
            raise DeployError(f"cannot resolve pseudo parameter {name} locally")
        return table[name]()

    def physical_id(self, name: str) -> str:
        pid = self.physical.get(name)
        if not pid:
            raise DeployError(f"resource {name} is not in stack {self.stack}")
        return pid

    def queue_name(self, name: str) -> str:
        # CloudFormation's physical id of a queue is its URL; take the name from it.
        return self.physical_id(name).rstrip("/").rsplit("/", 1)[-1]

    def queue_url(self, name: str) -> str:
        """A queue URL that works against the emulator (not the AWS-style physical id)."""
        return self.aws.sqs.get_queue_url(QueueName=self.queue_name(name))["QueueUrl"]

    def queue_attr(self, name: str, attr: str) -> str:
        attrs = self.aws.sqs.get_queue_attributes(QueueUrl=self.queue_url(name), AttributeNames=[attr])
        return attrs["Attributes"][attr]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        if name not in self.resources:
            raise DeployError(f"unknown name {name}")
        if self.type_of(name) == "AWS::SQS::Queue":
            return self.queue_url(name)
        return self.physical_id(name)

    def get_att(self, name: str, attr: str) -> Any:
        rtype = self.type_of(name)
        if rtype == "AWS::SQS::Queue":
            if attr == "Arn":
                return self.queue_attr(name, "QueueArn")
            if attr == "QueueName":
                return self.queue_name(name)
            if attr == "QueueUrl":
                return self.queue_url(name)
        if rtype == "AWS::DynamoDB::Table" and attr == "Arn":
            return self.aws.ddb.describe_table(TableName=self.physical_id(name))["Table"]["TableArn"]
        if rtype == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{self.physical_id(name)}"
        raise DeployError(f"cannot resolve Fn::GetAtt {name}.{attr} locally")

    def sub(self, text: str, local_vars: dict[str, Any]) -> str:
        def repl(m: re.Match[str]) -> str:
            inner = m.group(1).strip()
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in local_vars:
                return str(self.resolve(local_vars[inner]))
            if "." in inner and not inner.startswith("AWS::"):
                res, attr = inner.split(".", 1)
                return str(self.get_att(res, attr))
            return str(self.ref(inner))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(x) for x in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                res, attr = value.split(".", 1) if isinstance(value, str) else value
                return self.get_att(res, attr)
            if key == "Fn::Sub":
                if isinstance(value, str):
                    return self.sub(value, {})
                return self.sub(value[0], value[1] if len(value) > 1 else {})
            if key == "Fn::Join":
                sep, items = value
                return sep.join(str(x) for x in self.resolve(items))
            if key == "Fn::Select":
                index, items = value
                return self.resolve(items)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise DeployError(f"cannot resolve {key} locally")
        return {k: self.resolve(v) for k, v in node.items()}


# ------------------------------------------------------------------------------------
# Checking (and where the emulator's CloudFormation fell short, applying) properties
# ------------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.ok: list[str] = []
        self.applied: list[str] = []
        self.notes: list[str] = []
        self.failures: list[str] = []

    def check(self, what: str, good: bool, detail: str = "") -> bool:
        if good:
            self.ok.append(what)
        else:
            self.failures.append(f"{what}: {detail}" if detail else what)
        return good


def _client_error_code(e: botocore.exceptions.ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def fix(
    report: Report, what: str, matches: Callable[[], bool], apply: Callable[[], None], detail: Callable[[], str]
) -> None:
    """Check a property; if the emulator did not set it, apply it through the API, re-check."""
    if matches():
        report.ok.append(what)
        return
    before = detail()
    apply()
    if matches():
        report.applied.append(f"{what} (emulator's CloudFormation left it as {before}; applied through the API)")
    else:
        report.failures.append(f"{what}: still {detail()} after applying it through the API")


def as_bool(v: Any) -> bool:
    return v is True or str(v).lower() == "true"


def check_table(aws: Aws, rv: Resolver, name: str, props: dict[str, Any], report: Report) -> None:
    table = rv.physical_id(name)
    desc = aws.ddb.describe_table(TableName=table)["Table"]

    def key_schema(ks: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(k["AttributeName"], k["KeyType"]) for k in ks]

    report.check(
        f"{name} key schema",
        key_schema(desc["KeySchema"]) == key_schema(props["KeySchema"]),
        f"got {desc['KeySchema']}",
    )
    want_attrs = {(a["AttributeName"], a["AttributeType"]) for a in props.get("AttributeDefinitions", [])}
    got_attrs = {(a["AttributeName"], a["AttributeType"]) for a in desc.get("AttributeDefinitions", [])}
    report.check(f"{name} attribute definitions", want_attrs == got_attrs, f"got {sorted(got_attrs)}")
    want_mode = props.get("BillingMode", "PROVISIONED")
    got_mode = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    report.check(f"{name} billing mode {want_mode}", want_mode == got_mode, f"got {got_mode}")

    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        got = {i["IndexName"]: i for i in desc.get(kind) or []}
        for idx in props.get(kind) or []:
            g = got.get(idx["IndexName"])
            label = f"{name} index {idx['IndexName']}"
            if not report.check(label, g is not None, "missing"):
                continue
            report.check(
                f"{label} key schema",
                key_schema(g["KeySchema"]) == key_schema(idx["KeySchema"]),
                f"got {g['KeySchema']}",
            )
            want_proj = idx.get("Projection", {})
            got_proj = g.get("Projection", {})
            report.check(
                f"{label} projection {want_proj.get('ProjectionType')}",
                want_proj.get("ProjectionType") == got_proj.get("ProjectionType")
                and sorted(want_proj.get("NonKeyAttributes", [])) == sorted(got_proj.get("NonKeyAttributes", [])),
                f"got {got_proj}",
            )
        extra = set(got) - {i["IndexName"] for i in props.get(kind) or []}
        report.check(f"{name} no extra {kind}", not extra, f"unexpected {sorted(extra)}")

    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        want_on = as_bool(ttl.get("Enabled"))

        def ttl_state() -> tuple[str, str]:
            d = aws.ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            return d.get("TimeToLiveStatus", ""), d.get("AttributeName", "")

        def ttl_matches() -> bool:
            status, attr = ttl_state()
            if want_on:
                return status in ("ENABLED", "ENABLING") and attr == ttl["AttributeName"]
            return status in ("DISABLED", "DISABLING")

        fix(
            report,
            f"{name} TTL on {ttl['AttributeName']} {'enabled' if want_on else 'disabled'}",
            ttl_matches,
            lambda: aws.ddb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": want_on},
            ),
            lambda: "/".join(x for x in ttl_state() if x),
        )

    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        want_pitr = as_bool(pitr.get("PointInTimeRecoveryEnabled"))

        def pitr_state() -> str:
            d = aws.ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
            return d.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "")

        fix(
            report,
            f"{name} point-in-time recovery {'enabled' if want_pitr else 'disabled'}",
            lambda: (pitr_state() == "ENABLED") == want_pitr,
            lambda: aws.ddb.update_continuous_backups(
                TableName=table,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": want_pitr},
            ),
            pitr_state,
        )

    sse = props.get("SSESpecification")
    if sse and as_bool(sse.get("SSEEnabled")):
        status = (desc.get("SSEDescription") or {}).get("Status")
        if status in ("ENABLED", "ENABLING"):
            report.ok.append(f"{name} server-side encryption")
        else:
            # An emulator may keep no SSEDescription for SSEEnabled without a KMS key type;
            # DynamoDB encrypts every table at rest anyway: nothing to apply locally.
            report.notes.append(f"{name} SSESpecification: emulator reports no SSEDescription (not checkable locally)")


def check_queue(aws: Aws, rv: Resolver, name: str, props: dict[str, Any], report: Report) -> None:
    url = rv.queue_url(name)

    def attrs() -> dict[str, str]:
        return aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    if "QueueName" in props:
        want_name = rv.resolve(props["QueueName"])
        report.check(f"{name} name {want_name}", rv.queue_name(name) == want_name, f"got {rv.queue_name(name)}")

    for attr in SQS_SCALAR_ATTRIBUTES:
        if attr not in props:
            continue
        want = rv.resolve(props[attr])
        want_s = str(want).lower() if isinstance(want, bool) else str(want)
        fix(
            report,
            f"{name} {attr}={want_s}",
            lambda a=attr, w=want_s: attrs().get(a, "").lower() == w.lower(),
            lambda a=attr, w=want_s: aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={a: w}),
            lambda a=attr: attrs().get(a, "<unset>"),
        )

    if "RedrivePolicy" in props:
        want = rv.resolve(props["RedrivePolicy"])
        want = json.loads(want) if isinstance(want, str) else want
        want_norm = {
            "deadLetterTargetArn": want["deadLetterTargetArn"],
            "maxReceiveCount": int(want["maxReceiveCount"]),
        }

        def redrive() -> dict[str, Any] | None:
            raw = attrs().get("RedrivePolicy")
            if not raw:
                return None
            got = json.loads(raw)
            return {
                "deadLetterTargetArn": got.get("deadLetterTargetArn"),
                "maxReceiveCount": int(got.get("maxReceiveCount", 0)),
            }

        fix(
            report,
            f"{name} redrive to {want_norm['deadLetterTargetArn'].rsplit(':', 1)[-1]} "
            f"after {want_norm['maxReceiveCount']} receives",
            lambda: redrive() == want_norm,
            lambda: aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(want_norm)}),
            lambda: str(redrive()),
        )

    if "RedriveAllowPolicy" in props:
        want = rv.resolve(props["RedriveAllowPolicy"])
        want = json.loads(want) if isinstance(want, str) else want

        def allow() -> dict[str, Any] | None:
            raw = attrs().get("RedriveAllowPolicy")
            return json.loads(raw) if raw else None

        def allow_matches() -> bool:
            got = allow()
            return (
                got is not None
                and got.get("redrivePermission") == want.get("redrivePermission")
                and sorted(got.get("sourceQueueArns", [])) == sorted(want.get("sourceQueueArns", []))
            )

        what = f"{name} redrive-allow policy {want.get('redrivePermission')}"
        if allow() is None:
            # Not reported at all: either the emulator's CloudFormation dropped it, or the
            # emulator never returns it from GetQueueAttributes. Apply it; accept silence
            # afterwards.
            aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": json.dumps(want)})
            if allow() is None:
                report.notes.append(f"{what}: applied through the API, but the emulator does not report it back")
                return
        fix(
            report,
            what,
            allow_matches,
            lambda: aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": json.dumps(want)}),
            lambda: str(allow()),
        )


def _lifecycle_rule_to_api(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation LifecycleConfiguration rule -> S3 PutBucketLifecycleConfiguration rule."""
    supported = {
        "Id",
        "Status",
        "Prefix",
        "ExpirationInDays",
        "ExpirationDate",
        "AbortIncompleteMultipartUpload",
        "NoncurrentVersionExpirationInDays",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
    }
    unknown = set(rule) - supported
    if unknown:
        raise DeployError(f"lifecycle rule {rule.get('Id')}: cannot apply {sorted(unknown)} locally")
    out: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "ExpirationDate" in rule:
        out["Expiration"] = {"Date": rule["ExpirationDate"]}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    if "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    return out


def _lifecycle_key(rule: dict[str, Any]) -> tuple[Any, ...]:
    """What matters of an API-form lifecycle rule, for comparison."""
    flt = rule.get("Filter") or {}
    prefix = flt.get("Prefix", rule.get("Prefix", "")) or ""
    exp = rule.get("Expiration") or {}
    abort = rule.get("AbortIncompleteMultipartUpload") or {}
    nonc = rule.get("NoncurrentVersionExpiration") or {}
    return (
        rule.get("ID"),
        rule.get("Status"),
        prefix,
        exp.get("Days"),
        str(exp.get("Date")) if exp.get("Date") else None,
        abort.get("DaysAfterInitiation"),
        nonc.get("NoncurrentDays"),
    )


def check_bucket(aws: Aws, rv: Resolver, name: str, props: dict[str, Any], report: Report) -> None:
    bucket = rv.physical_id(name)
    aws.s3.head_bucket(Bucket=bucket)
    report.ok.append(f"{name} exists ({bucket})")

    def safe(call: Callable[[], Any], missing: tuple[str, ...]) -> Any:
        try:
            return call()
        except botocore.exceptions.ClientError as e:
            if _client_error_code(e) in missing:
                return None
            raise

    lifecycle = props.get("LifecycleConfiguration")
    if lifecycle:
        want_rules = [_lifecycle_rule_to_api(r) for r in lifecycle.get("Rules", [])]
        want = sorted(map(_lifecycle_key, want_rules), key=repr)

        def got() -> list[tuple[Any, ...]]:
            cfg = safe(
                lambda: aws.s3.get_bucket_lifecycle_configuration(Bucket=bucket), ("NoSuchLifecycleConfiguration",)
            )
            return sorted(map(_lifecycle_key, (cfg or {}).get("Rules", [])), key=repr)

        fix(
            report,
            f"{name} lifecycle rules {[r.get('ID') for r in want_rules]}",
            lambda: got() == want,
            lambda: aws.s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": want_rules}
            ),
            lambda: str(got() or "none"),
        )

    pab = props.get("PublicAccessBlockConfiguration")
    if pab:
        keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        want_pab = {k: as_bool(pab.get(k, False)) for k in keys}

        def got_pab() -> dict[str, bool] | None:
            r = safe(lambda: aws.s3.get_public_access_block(Bucket=bucket), ("NoSuchPublicAccessBlockConfiguration",))
            return None if r is None else {k: bool(r["PublicAccessBlockConfiguration"].get(k)) for k in keys}

        fix(
            report,
            f"{name} public access block",
            lambda: got_pab() == want_pab,
            lambda: aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=want_pab),
            lambda: str(got_pab() or "none"),
        )

    ownership = props.get("OwnershipControls")
    if ownership:
        want_own = [r["ObjectOwnership"] for r in ownership.get("Rules", [])]

        def got_own() -> list[str] | None:
            r = safe(lambda: aws.s3.get_bucket_ownership_controls(Bucket=bucket), ("OwnershipControlsNotFoundError",))
            return None if r is None else [x["ObjectOwnership"] for x in r["OwnershipControls"]["Rules"]]

        fix(
            report,
            f"{name} object ownership {want_own}",
            lambda: got_own() == want_own,
            lambda: aws.s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": o} for o in want_own]}
            ),
            lambda: str(got_own() or "none"),
        )

    encryption = props.get("BucketEncryption")
    if encryption:
        want_enc = []
        for rule in encryption.get("ServerSideEncryptionConfiguration", []):
            default = rule.get("ServerSideEncryptionByDefault", {})
            api_default = {"SSEAlgorithm": default["SSEAlgorithm"]}
            if "KMSMasterKeyID" in default:
                api_default["KMSMasterKeyID"] = rv.resolve(default["KMSMasterKeyID"])
            want_enc.append(
                {
                    "ApplyServerSideEncryptionByDefault": api_default,
                    "BucketKeyEnabled": as_bool(rule.get("BucketKeyEnabled", False)),
                }
            )

        def enc_key(rules: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return [
                (r["ApplyServerSideEncryptionByDefault"].get("SSEAlgorithm"), bool(r.get("BucketKeyEnabled", False)))
                for r in rules
            ]

        def got_enc() -> list[tuple[Any, ...]] | None:
            r = safe(
                lambda: aws.s3.get_bucket_encryption(Bucket=bucket),
                ("ServerSideEncryptionConfigurationNotFoundError",),
            )
            return None if r is None else enc_key(r["ServerSideEncryptionConfiguration"]["Rules"])

        fix(
            report,
            f"{name} default encryption {enc_key(want_enc)}",
            lambda: got_enc() == enc_key(want_enc),
            lambda: aws.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": want_enc}),
            lambda: str(got_enc() or "none"),
        )

    versioning = props.get("VersioningConfiguration")
    if versioning:
        want_ver = versioning["Status"]
        fix(
            report,
            f"{name} versioning {want_ver}",
            lambda: aws.s3.get_bucket_versioning(Bucket=bucket).get("Status") == want_ver,
            lambda: aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": want_ver}),
            lambda: str(aws.s3.get_bucket_versioning(Bucket=bucket).get("Status", "unset")),
        )


def verify(aws: Aws, rv: Resolver, subset: dict[str, Any]) -> Report:
    """Check every data resource; an API error (e.g. a resource that vanished) is a failure."""
    report = Report()
    try:
        _verify(aws, rv, subset, report)
    except botocore.exceptions.ClientError as e:
        report.failures.append(f"checking resources: {e}")
    return report


def _verify(aws: Aws, rv: Resolver, subset: dict[str, Any], report: Report) -> None:
    for name, res in subset["Resources"].items():
        rtype = res["Type"]
        props = res.get("Properties") or {}
        if rtype in CHECKED_PROPERTIES:
            unchecked = sorted(set(props) - CHECKED_PROPERTIES[rtype])
            if unchecked:
                report.notes.append(f"{name}: properties not checked locally: {', '.join(unchecked)}")
        if rtype == "AWS::DynamoDB::Table":
            check_table(aws, rv, name, props, report)
        elif rtype == "AWS::SQS::Queue":
            check_queue(aws, rv, name, props, report)
        elif rtype == "AWS::S3::Bucket":
            check_bucket(aws, rv, name, props, report)
        elif rtype in ("AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy"):
            # Resource policies are not applied by hand: the emulator speaks plain HTTP
            # and enforces no resource policies.
            report.notes.append(f"{name} ({rtype}): deployed as part of the stack, not enforced by the emulator")


# ------------------------------------------------------------------------------------
# .fanout/local.env
# ------------------------------------------------------------------------------------

UNSAFE_ENV_VALUE = re.compile(r"[\s'\"`$\\;&|<>()#*?\[\]{}!]")


def env_lines(template: dict[str, Any], rv: Resolver, endpoint: str, region: str) -> list[tuple[str, str]]:
    pairs = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        # Video and callback URLs may name this machine here (shared/src/outbound.rs);
        # on AWS the variable is not set and private addresses are refused.
        ("FANOUT_PRIVATE_URLS", "allow"),
    ]
    variables = ((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables") or {}
    for key, value in variables.items():
        if isinstance(value, bool):
            resolved = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            resolved = rv.resolve(value)
        else:
            resolved = value
        pairs.append((key, str(resolved)))
    seen = set()
    for key, value in pairs:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or key in seen:
            raise DeployError(f"bad or duplicate environment variable name {key!r}")
        seen.add(key)
        if UNSAFE_ENV_VALUE.search(value):
            raise DeployError(f"{key}={value!r} cannot be written as a plain KEY=VALUE line")
    return pairs


# Credentials `fanout-admin local-env` (make run) adds to the file: kept across
# re-deploys, so the tokens made once stay valid while the emulator keeps its data.
KEPT_ENV = re.compile(r"FANOUT_(ADMIN_TOKEN|ACCOUNT_ID|TOKEN|CLEARML_[A-Z_]+)")


def write_env(path: Path, pairs: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = {k for k, _ in pairs}
    kept: list[tuple[str, str]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and KEPT_ENV.fullmatch(key) and key not in names:
                kept.append((key, value))
    tmp = path.with_suffix(".env.tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in pairs + kept), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


# ------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    port = os.environ.get("FANOUT_EMULATOR_PORT", "4566")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", type=Path, default=ROOT / "infra" / "template.yaml")
    p.add_argument("--stack-name", default=os.environ.get("FANOUT_STACK_NAME", "fanout-local"))
    p.add_argument("--endpoint", default=f"http://127.0.0.1:{port}")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--env-file", type=Path, default=ROOT / ".fanout" / "local.env")
    p.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter value (only parameters of the data resources)",
    )
    p.add_argument("--force", action="store_true", help="delete and recreate the stack even if unchanged")
    p.add_argument("--print-template", action="store_true", help="print the data subset as JSON and exit")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    template = load_template(args.template)
    subset = data_subset(template)
    if args.print_template:
        print(json.dumps(subset, indent=2))
        return 0

    params: dict[str, str] = {}
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep:
            raise DeployError(f"--parameter {item!r}: expected KEY=VALUE")
        params[key] = value
    sub_params = subset.get("Parameters", {})
    for key in params:
        if key not in sub_params:
            raise DeployError(f"--parameter {key}: not a parameter of the data resources")
    for key, spec in sub_params.items():
        if key not in params and "Default" not in spec:
            raise DeployError(f"parameter {key} has no default; pass --parameter {key}=...")
    effective = {k: str(spec["Default"]) for k, spec in sub_params.items() if "Default" in spec}
    effective.update(params)

    aws = Aws(args.endpoint, args.region)
    try:
        action = ensure_stack(aws, args.stack_name, subset, params, args.force)
    except botocore.exceptions.EndpointConnectionError as e:
        raise DeployError(f"no emulator answers at {args.endpoint} ({e}); run `make emulator-up` first") from e
    kinds = sorted({r["Type"] for r in subset["Resources"].values()})
    print(
        f"deploy: stack {args.stack_name} {action} at {args.endpoint} "
        f"({len(subset['Resources'])} resources: {', '.join(kinds)})"
    )

    rv = Resolver(aws, args.stack_name, template, effective)
    report = verify(aws, rv, subset)
    if report.failures and action == "unchanged":
        # The stack record survived but its resources did not (e.g. reset emulator state).
        print("deploy: deployed resources differ from the template; recreating the stack")
        ensure_stack(aws, args.stack_name, subset, params, force=True)
        rv = Resolver(aws, args.stack_name, template, effective)
        report = verify(aws, rv, subset)

    print(f"deploy: {len(report.ok)} checks passed")
    for line in report.applied:
        print(f"deploy: applied: {line}")
    for line in report.notes:
        print(f"deploy: note: {line}")
    if report.failures:
        for line in report.failures:
            print(f"deploy: FAILED: {line}", file=sys.stderr)
        return 1

    pairs = env_lines(template, rv, args.endpoint, args.region)
    write_env(args.env_file, pairs)
    try:
        shown = args.env_file.relative_to(ROOT)
    except ValueError:
        shown = args.env_file
    print(f"deploy: wrote {shown}:")
    for key, value in pairs:
        print(f"  {key}={value}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except DeployError as e:
        print(f"deploy: error: {e}", file=sys.stderr)
        sys.exit(1)
