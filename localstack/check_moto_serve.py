"""Checks localstack/moto_serve.py's Query fixes against plain moto, in process.

The same random table is queried through plain moto and through the patched one: every
query (table and index, both directions, with limits and key ranges) must give the same
items in the same order, and a keys-only index over large items must page fewer times
(its pages are sized by the projected items). Exit status 1 on any difference.
"""

import json
import os
import random
import subprocess
import sys

QUERIES = 10


def run(patched: bool) -> dict:
    """Builds the table and answers every query; returns items and page counts."""
    import boto3
    from moto import mock_aws

    if patched:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import moto_serve  # noqa: F401  (applies the fixes)

    rng = random.Random(3)
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        strings = [{"AttributeName": a, "AttributeType": "S"} for a in ["pk", "sk", "g", "gs"]]
        db.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=strings + [{"AttributeName": "n", "AttributeType": "N"}],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "all",
                    "KeySchema": [
                        {"AttributeName": "g", "KeyType": "HASH"},
                        {"AttributeName": "gs", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                },
                {
                    "IndexName": "keys",
                    "KeySchema": [
                        {"AttributeName": "g", "KeyType": "HASH"},
                        {"AttributeName": "n", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        )
        for i in range(3000):
            item = {
                "pk": {"S": f"P{rng.randrange(50)}"},
                "sk": {"S": f"S{i}"},
                "blob": {"B": rng.randbytes(rng.randrange(100, 3000))},
            }
            if rng.random() < 0.8:
                item["g"] = {"S": f"G{rng.randrange(3)}"}
                item["gs"] = {"S": f"T{rng.randrange(500):03}"}
                item["n"] = {"N": str(rng.randrange(-50, 50))}
            db.put_item(TableName="t", Item=item)

        def pages(**query):
            got, start = [], None
            while True:
                if start:
                    query["ExclusiveStartKey"] = start
                answer = db.query(TableName="t", **query)
                got.append([(i["pk"]["S"], i["sk"]["S"]) for i in answer["Items"]])
                start = answer.get("LastEvaluatedKey")
                if not start:
                    return got

        def partition(name):
            return {"KeyConditionExpression": "g = :p", "ExpressionAttributeValues": {":p": {"S": name}}}

        answers = []
        for index in ["all", "keys"]:
            for forward in [True, False]:
                answers.append(pages(IndexName=index, ScanIndexForward=forward, **partition("G1")))
                answers.append(
                    pages(IndexName=index, ScanIndexForward=forward, Limit=37, **partition("G2"))
                )
        answers.append(
            pages(
                IndexName="all",
                KeyConditionExpression="g = :p AND gs BETWEEN :a AND :b",
                ExpressionAttributeValues={":p": {"S": "G0"}, ":a": {"S": "T100"}, ":b": {"S": "T300"}},
            )
        )
        answers.append(
            pages(
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "P7"}},
                ScanIndexForward=False,
                Limit=5,
            )
        )
        assert len(answers) == QUERIES
        return {
            "items": [[i for page in a for i in page] for a in answers],
            "pages": [len(a) for a in answers],
        }


def main() -> int:
    if len(sys.argv) > 1:
        print(json.dumps(run(sys.argv[1] == "patched")))
        return 0
    # Each side in its own interpreter: the fixes patch moto's classes for good.
    plain, patched = (
        json.loads(subprocess.check_output([sys.executable, __file__, side]))
        for side in ["plain", "patched"]
    )
    ok = plain["items"] == patched["items"]
    print(f"same items in the same order for {QUERIES} queries: {ok}")
    # Answers 4 and 6 (keys-only index, no limit, both directions) must page less.
    fewer = all(patched["pages"][i] < plain["pages"][i] for i in (4, 6))
    print(f"keys-only index pages {plain['pages'][4]} -> {patched['pages'][4]}: fewer = {fewer}")
    return 0 if ok and fewer else 1


if __name__ == "__main__":
    sys.exit(main())
