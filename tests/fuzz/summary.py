"""Short summary of one schemathesis run, read from its NDJSON and JUnit reports.

    python summary.py REPORT_DIR SECONDS

Prints operations tested, test cases (= requests) by phase, answers by status, and each
failing operation; exits 1 when the reports show no tested operation or a failure (the
run's own exit code is checked by run.sh as well).
"""

import collections
import glob
import json
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    report_dir, seconds = sys.argv[1], float(sys.argv[2])
    ndjson = sorted(glob.glob(f"{report_dir}/*.ndjson"))
    junit = sorted(glob.glob(f"{report_dir}/*.xml"))
    if not ndjson or not junit:
        print(f"fuzz: no schemathesis report in {report_dir}")
        return 1
    by_phase = collections.Counter()
    by_status = collections.Counter()
    operations = set()
    selected = None
    for line in open(ndjson[-1], encoding="utf-8"):
        event = json.loads(line)
        if "LoadingFinished" in event:
            stats = event["LoadingFinished"].get("statistic", {}).get("operations", {})
            selected = stats.get("selected"), stats.get("total")
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        interactions = finished.get("recorder", {}).get("interactions", {})
        for interaction in interactions.values():
            by_phase[finished.get("phase", "?")] += 1
            operations.add(finished["recorder"]["label"])
            response = interaction.get("response")
            by_status[response["status_code"] if response else "no answer"] += 1
    suite = ET.parse(junit[-1]).getroot()
    failing = []
    for case in suite.iter("testcase"):
        problems = [c for c in case if c.tag in ("failure", "error")]
        if problems:
            failing.append((case.get("name"), problems[0].get("message") or problems[0].tag))
    total = sum(by_phase.values())
    classes = collections.Counter()
    for status, count in by_status.items():
        classes[f"{str(status)[0]}xx" if isinstance(status, int) else status] += count
    print("fuzz: ---- summary ----")
    if selected:
        print(f"fuzz: operations: {selected[0]} selected of {selected[1]} in the document, {len(operations)} tested")
    print(
        f"fuzz: test cases (one request each): {total} ("
        + ", ".join(f"{phase} {n}" for phase, n in sorted(by_phase.items()))
        + ")"
    )
    print(
        "fuzz: answers: "
        + ", ".join(f"{c} {n}" for c, n in sorted(classes.items()))
        + " | "
        + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items(), key=lambda kv: str(kv[0])))
    )
    print(f"fuzz: failures: {len(failing)} operation(s)")
    for name, message in failing:
        print(f"fuzz:   {name}: {message.splitlines()[0] if message else ''}")
    print(f"fuzz: duration: {seconds:.0f} s")
    return 1 if failing or not operations else 0


if __name__ == "__main__":
    sys.exit(main())
