#!/usr/bin/env bash
# The digits example against a running Fanout (make run): packs the archives and data
# (pack.sh), uploads each through POST /orchestrator/storage and its presigned PUT,
# registers the problem, four training items and the two algorithms, waits for both
# chains, adds the last two training items (a third rank each), asks a prediction on the
# first test item from the best model and downloads it. Prints each step's answer.
#
# Usage: FANOUT_TOKEN=<token> [FANOUT_API=http://127.0.0.1:3000] examples/orchestrator/digits/run.sh
# (make run writes FANOUT_TOKEN into .fanout/local.env: `set -a; . .fanout/local.env; set +a`.)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
API=${FANOUT_API:-http://127.0.0.1:3000}
: "${FANOUT_TOKEN:?set FANOUT_TOKEN (make run prints it and writes it into .fanout/local.env)}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bash "$HERE/pack.sh" "$WORK" >&2

call() { # call METHOD PATH [JSON]
    local args=(-sS -X "$1" -H "Authorization: Bearer $FANOUT_TOKEN" "$API$2")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' -d "$3")
    curl "${args[@]}"
}
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if isinstance(v,list) else v[k]
print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$1"; }
upload() { # upload FILE -> uuid
    local made url
    made=$(call POST /orchestrator/storage '{}')
    url=$(field url <<<"$made")
    curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$url" >/dev/null
    field uuid <<<"$made"
}
chain() { # chain ALGO -> "rank status perf" lines
    call GET "/orchestrator/learnuplet?algo=$1" | python3 -c 'import json,sys
for u in sorted(json.load(sys.stdin)["learnuplets"], key=lambda u: u["rank"]):
    print(u["rank"], u["status"], u["perf"])'
}
wait_chain() { # wait_chain ALGO NAME
    for _ in $(seq 1 300); do
        if ! chain "$1" | grep -qE ' (todo|pending) '; then
            echo "$2:"; chain "$1" | sed 's/^/  rank /'; return 0
        fi
        sleep 1
    done
    echo "$2: not done after 300 s" >&2; chain "$1" >&2; exit 1
}

workflow=$(upload "$WORK/workflow.zip")
test0=$(upload "$WORK/data/test_0.npz"); test1=$(upload "$WORK/data/test_1.npz")
train=()
for i in 0 1 2 3 4 5; do train+=("$(upload "$WORK/data/train_$i.npz")"); done
problem=$(python3 -c 'import uuid; print(uuid.uuid4())')
call POST /orchestrator/problem "{\"uuid\": \"$problem\", \"workflow\": \"$workflow\",
    \"test_dataset\": [\"$test0\", \"$test1\"], \"size_train_dataset\": 2}"; echo
call POST /orchestrator/data "{\"uuid\": [\"$test0\", \"$test1\", \"${train[0]}\", \"${train[1]}\",
    \"${train[2]}\", \"${train[3]}\"], \"problems\": \"$problem\"}"; echo
logreg=$(upload "$WORK/logreg.zip"); forest=$(upload "$WORK/forest.zip")
call POST /orchestrator/algo "{\"uuid\": \"$logreg\", \"name\": \"logistic regression\", \"problem\": \"$problem\"}"; echo
call POST /orchestrator/algo "{\"uuid\": \"$forest\", \"name\": \"random forest\", \"problem\": \"$problem\"}"; echo
wait_chain "$logreg" "logistic regression"
wait_chain "$forest" "random forest"
call POST /orchestrator/data "{\"uuid\": [\"${train[4]}\", \"${train[5]}\"], \"problems\": [\"$problem\"]}"; echo
wait_chain "$logreg" "logistic regression, with new data"
wait_chain "$forest" "random forest, with new data"
asked=$(call POST /orchestrator/prediction "{\"data\": [\"$test0\"], \"problem\": \"$problem\"}")
echo "$asked"
pred=$(field preduplet <<<"$asked")
for _ in $(seq 1 120); do
    doc=$(call GET "/orchestrator/preduplet/$pred")
    status=$(field status <<<"$doc")
    [ "$status" = done ] || [ "$status" = failed ] && break
    sleep 1
done
echo "preduplet $pred: $status"
[ "$status" = done ]
stored=$(field prediction_storage_uuid <<<"$doc")
url=$(call GET "/orchestrator/storage/$stored" | field url)
curl -sSf -o "$WORK/predictions.zip" "$url"
python3 - "$WORK/predictions.zip" "$test0" <<'PY'
import sys, zipfile
labels = zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode().split()
print(f"predictions.zip: {len(labels)} labels for test item {sys.argv[2]}, the first ten {' '.join(labels[:10])}")
PY
