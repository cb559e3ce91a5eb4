"""End-to-end scenarios of Fanout's ClearML surface with the real, unmodified clients.

Run by tests/clearml/run.sh, which starts the gateway and writes a clearml.conf for a
fresh account; the environment names it (CLEARML_CONFIG_FILE) and the work directory
(CLEARML_E2E_DIR: scripts, the agents' home and logs). Each scenario prints one line
`ok <name> (<seconds> s)` or fails the run with what it saw; the last line is
`N passed, M failed`.

The agents run without Docker, venvs or pip (clearml_wire.md §5): the task's Python is
this venv's.
"""

import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from clearml import Task
from clearml.backend_api.session.client import APIClient

WORK = Path(os.environ["CLEARML_E2E_DIR"])
BIN = Path(sys.executable).parent
PROJECT = "fanout-e2e"
TERMINAL = {"completed", "failed", "stopped", "published", "closed"}


def agent_env(worker_id):
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(WORK / "home"),
            "CLEARML_WORKER_ID": worker_id,
            "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL": "1",
            "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL": sys.executable,
            "CLEARML_AGENT_QUEUE_POLL_FREQ_SEC": "1",
            "CLEARML_AGENT_STATUS_REPORT_FREQ_SEC": "2",
        }
    )
    return env


class Agent:
    """A `clearml-agent daemon --foreground` process listening to one queue."""

    def __init__(self, queue, worker_id):
        self.worker_id = worker_id
        self.log_path = WORK / f"agent-{worker_id}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "clearml-agent"), "daemon", "--queue", queue, "--foreground"],
            env=agent_env(worker_id),
            cwd=WORK,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def tail(self):
        return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-30:])


def script(name, text):
    path = WORK / "scripts" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def create(name, body, inline=False):
    """A task running `body`: by the path of a local file (the agents here share this
    machine), or `inline` with the code itself in the task (`script.diff`), which is
    what a worker elsewhere can run."""
    return Task.create(
        project_name=PROJECT,
        task_name=name,
        script=script(name, body),
        packages=[],
        add_task_init_call=False,
        detect_repository=inline,
    )


def wait_status(task, wanted, timeout, agents=()):
    """Waits until the task's status is one of `wanted`; fails on another terminal one."""
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = task.get_status()
        if status in wanted:
            return status
        if status in TERMINAL:
            break
        time.sleep(0.5)
    tails = "\n".join(f"--- {a.worker_id}\n{a.tail()}" for a in agents)
    raise AssertionError(f"task {task.id} ({task.name}) is {status!r}, waited for {wanted}\n{tails}")


def console(task):
    return "".join(task.get_reported_console_output(number_of_reports=1000))


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def api():
    return APIClient()


# --- scenarios -------------------------------------------------------------------------


def scenario_run_complete_fail_abort(state):
    """SDK creates inline-script tasks with hyperparameters and enqueues them; one agent
    runs them: completed, failed, and aborted (stopped through the agent's handshake);
    the SDK reads status, parameters and log back. `clearml-agent list` shows the agent.
    """
    hello = create("hello-inline", 'print("hello from fanout", flush=True)\n')
    hello.set_parameters({"General/greeting": "hello", "General/count": 3})
    failing = create("failing", 'import sys\nprint("about to fail", flush=True)\nsys.exit(3)\n')
    slow = create(
        "slow",
        "import time\nfor i in range(240):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)\n",
    )
    for task in (hello, failing, slow):
        Task.enqueue(task, queue_name="default")
        check(task.get_status() == "queued", f"{task.name}: {task.get_status()} after enqueue")
    agent = Agent("default", "fanout-agent-1")
    state["agents"].append(agent)
    wait_status(hello, {"completed"}, 90, [agent])
    wait_status(failing, {"failed"}, 60, [agent])
    wait_status(slow, {"in_progress"}, 60, [agent])

    # Read back: a fresh SDK object of the completed task.
    again = Task.get_task(task_id=hello.id)
    params = again.get_parameters()
    check(params.get("General/greeting") == "hello", f"parameters read back: {params}")
    check(str(params.get("General/count")) == "3", f"parameters read back: {params}")
    log = console(again)
    check("hello from fanout" in log, f"the task's output is not in its log: {log[-500:]!r}")
    check("about to fail" in console(failing), "the failing task's output is not in its log")

    # The agent while it runs a task: clearml-agent list.
    listed = subprocess.run(
        [str(BIN / "clearml-agent"), "list"],
        env=agent_env("lister"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    check(listed.returncode == 0, f"clearml-agent list: {listed.returncode} {listed.stderr[-500:]}")
    check("fanout-agent-1" in listed.stdout, f"clearml-agent list: {listed.stdout[-800:]!r}")

    # A running task cannot be enqueued (400/110)...
    try:
        Task.enqueue(slow, queue_name="default")
    except Exception as err:  # the SDK raises what the server answered
        check("110" in str(err) or "status" in str(err).lower(), f"enqueue of a running task: {err}")
    else:
        raise AssertionError("enqueue of a running task was accepted")

    # ...it is aborted: the server marks it `stopping`, the agent kills it, `stopped`.
    time.sleep(3)
    slow.mark_stop_request()
    wait_status(slow, {"stopped"}, 60, [agent])
    check("tick 0" in console(slow), "the aborted task's output is not in its log")

    # A completed task enqueued again: refused, then reset with force and enqueued (in a
    # queue no agent listens to), then dequeued back to created.
    api().queues.create(name="holding")
    try:
        Task.enqueue(hello, queue_name="holding")
    except Exception:
        pass
    else:
        raise AssertionError("enqueue of a completed task was accepted")
    Task.enqueue(hello, queue_name="holding", force=True)
    check(hello.get_status() == "queued", f"after a forced enqueue: {hello.get_status()}")
    Task.dequeue(hello)
    check(hello.get_status() == "created", f"after dequeue: {hello.get_status()}")
    agent.stop()
    state["agents"].remove(agent)


def scenario_execute(state):
    """`clearml-agent execute --id` runs a task that was never enqueued."""
    task = create("executed", 'print("executed by id", flush=True)\n')
    log = open(WORK / "execute.log", "w")
    done = subprocess.run(
        [str(BIN / "clearml-agent"), "execute", "--id", task.id],
        env=agent_env("fanout-executor"),
        cwd=WORK,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=120,
    )
    log.close()
    check(done.returncode == 0, f"execute exited {done.returncode}: {(WORK / 'execute.log').read_text()[-1500:]}")
    wait_status(task, {"completed"}, 30)
    check("executed by id" in console(task), "the executed task's output is not in its log")


def scenario_two_agents(state):
    """Two agents on one queue with 20 tasks: every task runs once, by one of them."""
    client = api()
    client.queues.create(name="pair")
    tasks = [create(f"pair-{i}", f'print("pair task {i} ran", flush=True)\n') for i in range(20)]
    for task in tasks:
        Task.enqueue(task, queue_name="pair")
    agents = [Agent("pair", "fanout-agent-a"), Agent("pair", "fanout-agent-b")]
    state["agents"].extend(agents)
    for task in tasks:
        wait_status(task, {"completed"}, 180, agents)
    workers = set()
    for i, task in enumerate(tasks):
        log = console(task)
        runs = log.count(f"pair task {i} ran")
        check(runs == 1, f"{task.name} ran {runs} times")
        fresh = client.tasks.get_all(id=[task.id], only_fields=["last_worker"])
        workers.add(fresh[0].last_worker)
    check(len(client.queues.get_all(name="^pair$")[0].entries) == 0, "the pair queue is not empty")
    print(f"   20 tasks ran once each, by {sorted(workers)}")
    for agent in agents:
        agent.stop()
        state["agents"].remove(agent)


def scenario_sdk_inside(state):
    """A task whose script uses the SDK itself (Task.init under the agent): it reads its
    hyperparameters and reports scalars, which land as events and as last_iteration."""
    task = create(
        "sdk-inside",
        "from clearml import Task\n"
        "task = Task.init()\n"
        "params = task.get_parameters()\n"
        "print('greeting is', params.get('General/greeting'), flush=True)\n"
        "for i in range(3):\n"
        "    task.get_logger().report_scalar('loss', 'train', value=1.0 / (i + 1), iteration=i)\n"
        "task.flush(wait_for_uploads=True)\n"
        "print('reported', flush=True)\n",
    )
    task.set_parameters({"General/greeting": "hi from the SDK"})
    api().queues.create(name="inside")
    Task.enqueue(task, queue_name="inside")
    agent = Agent("inside", "fanout-agent-sdk")
    state["agents"].append(agent)
    wait_status(task, {"completed"}, 120, [agent])
    log = console(task)
    check("greeting is hi from the SDK" in log, f"the task's SDK did not read its parameters: {log[-1500:]!r}")
    events = api().events.get_task_events(task=task.id, event_type="training_stats_scalar")
    scalars = [e for e in events.events if e.get("metric") == "loss"]
    check(len(scalars) == 3, f"scalars stored: {scalars}")
    fresh = api().tasks.get_all(id=[task.id], only_fields=["last_iteration"])
    check(fresh[0].last_iteration == 2, f"last_iteration {fresh[0].last_iteration}")
    agent.stop()
    state["agents"].remove(agent)


def scenario_queue_order(state):
    """Queue reordering through the API (the SDK's APIClient): to front, backward,
    forward, to back; the answered positions and the stored order agree; an agent then
    takes the tasks in that order."""
    client = api()
    queue = client.queues.create(name="order").id
    tasks = [create(f"order-{i}", f'print("order task {i}", flush=True)\n') for i in range(4)]
    for task in tasks:
        Task.enqueue(task, queue_name="order")
    ids = [t.id for t in tasks]

    def order():
        return [e.task for e in client.queues.get_by_id(queue=queue).entries]

    check(order() == ids, f"enqueued order {order()}")
    moved = client.queues.move_task_to_front(queue=queue, task=ids[2])
    check(moved.position == 0, f"to front: position {moved.position}")
    check(order() == [ids[2], ids[0], ids[1], ids[3]], f"after to front: {order()}")
    moved = client.queues.move_task_backward(queue=queue, task=ids[2], count=2)
    check(moved.position == 2, f"backward 2: position {moved.position}")
    moved = client.queues.move_task_forward(queue=queue, task=ids[3], count=10)
    check(moved.position == 0, f"forward past the front: position {moved.position}")
    moved = client.queues.move_task_to_back(queue=queue, task=ids[0])
    check(moved.position == 3, f"to back: position {moved.position}")
    wanted = [ids[3], ids[1], ids[2], ids[0]]
    check(order() == wanted, f"stored order {order()}, wanted {wanted}")

    agent = Agent("order", "fanout-agent-order")
    state["agents"].append(agent)
    for task in tasks:
        wait_status(task, {"completed"}, 120, [agent])
    started = client.tasks.get_all(id=ids, only_fields=["id", "started"])
    by_start = [t.id for t in sorted(started, key=lambda t: t.started)]
    check(by_start == wanted, f"run order {by_start}, wanted {wanted}")
    agent.stop()
    state["agents"].remove(agent)


def reconcile():
    """One reconciler pass (the worker binary's), its watchdog's threshold 4 s."""
    env = dict(os.environ, FANOUT_CLEARML_WATCHDOG_SECONDS="4", RUST_LOG="warn")
    done = subprocess.run(
        [os.environ["FANOUT_WORKER_BIN"], "--reconcile-once", "--stall-seconds", "3600"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(done.returncode == 0, f"reconciler exited {done.returncode}: {done.stderr[-1500:]}")
    return done.stdout


def scenario_watchdog(state):
    """An agent SIGKILLed while it runs a task: nothing pings or reports the task any
    more, and the reconciler's watchdog (here with a 4 s threshold) stops it."""
    task = create(
        "orphaned",
        "import time\nfor i in range(600):\n    print(f'beat {i}', flush=True)\n    time.sleep(0.5)\n",
    )
    api().queues.create(name="doomed")
    Task.enqueue(task, queue_name="doomed")
    agent = Agent("doomed", "fanout-agent-doomed")
    state["agents"].append(agent)
    wait_status(task, {"in_progress"}, 60, [agent])
    time.sleep(3)
    # The agent and everything it started (its session), at once.
    os.killpg(agent.proc.pid, signal.SIGKILL)
    agent.proc.wait()
    subprocess.run(["pkill", "-KILL", "-f", str(WORK / "scripts" / "orphaned.py")], check=False)
    check(task.get_status() == "in_progress", f"after the kill: {task.get_status()}")

    # Within the threshold of the last report nothing happens; after it, the watchdog.
    reconcile()
    check(task.get_status() == "in_progress", f"stopped within the threshold: {task.get_status()}")
    time.sleep(5)
    out = reconcile()
    fresh = api().tasks.get_all(id=[task.id], only_fields=["status", "status_message", "status_reason"])[0]
    status = getattr(fresh.status, "value", fresh.status)  # the SDK's enum
    check(status == "stopped", f"after the watchdog: {status} ({out[-500:]!r})")
    check(fresh.status_message == "Forced stop (non-responsive)", f"message {fresh.status_message!r}")
    check("beat 0" in console(task), "the orphaned task's output is not in its log")
    agent.log.close()
    state["agents"].remove(agent)


def scenario_served_queue(state):
    """A queue Fanout serves itself (system tag `fanout`): no clearml-agent anywhere.
    Fanout's own container worker (here the worker binary, consuming the work queue)
    takes each task pushed into it, runs its inline script and ends it: completed with
    its log, failed with its exit code, and stopped through the abort handshake."""
    client = api()
    client.queues.create(name="serverless", system_tags=["fanout"])
    done = create("served-ok", 'import sys\nprint("served by fanout", flush=True)\nprint("to stderr", file=sys.stderr)\n', inline=True)
    failing = create("served-fail", 'import sys\nprint("served failure", flush=True)\nsys.exit(4)\n', inline=True)
    slow = create(
        "served-slow",
        "import time\nfor i in range(240):\n    print(f'tock {i}', flush=True)\n    time.sleep(0.5)\n",
        inline=True,
    )
    for task in (done, failing, slow):
        Task.enqueue(task, queue_name="serverless")
    log = open(WORK / "fanout-worker.log", "w")
    worker = subprocess.Popen(
        [os.environ["FANOUT_WORKER_BIN"], "--queues", "work", "--wait-seconds", "1"],
        env=dict(os.environ, RUST_LOG="info", FANOUT_CLEARML_PYTHON=sys.executable),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_status(done, {"completed"}, 90)
        wait_status(failing, {"failed"}, 60)
        wait_status(slow, {"in_progress"}, 60)
        text = console(done)
        check("served by fanout" in text and "to stderr" in text, f"served log: {text[-800:]!r}")
        check("served failure" in console(failing), "the failing served task's output is not in its log")
        fresh = client.tasks.get_all(id=[failing.id], only_fields=["status_reason", "last_worker"])[0]
        check("exit code 4" in fresh.status_reason, f"status_reason {fresh.status_reason!r}")
        check(fresh.last_worker.startswith("fanout:"), f"last_worker {fresh.last_worker!r}")
        time.sleep(2)
        slow.mark_stop_request()
        wait_status(slow, {"stopped"}, 60)
        check("tock 0" in console(slow), "the aborted served task's output is not in its log")
        queue = client.queues.get_all(name="^serverless$")[0]
        check(len(queue.entries) == 0, f"the served queue is not empty: {queue.entries}")

        # The worker SIGKILLed while it runs one: the task is left in_progress, and the
        # watchdog stops it as it would a lost agent's.
        doomed = create(
            "served-doomed",
            "import time\nfor i in range(600):\n    print(f'beat {i}', flush=True)\n    time.sleep(0.5)\n",
            inline=True,
        )
        Task.enqueue(doomed, queue_name="serverless")
        wait_status(doomed, {"in_progress"}, 60)
        time.sleep(2)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        check(doomed.get_status() == "in_progress", f"after the kill: {doomed.get_status()}")
        time.sleep(5)
        reconcile()
        wait_status(doomed, {"stopped"}, 10)
        check("beat 0" in console(doomed), "the killed worker's task has no log")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        log.close()


SCENARIOS = [
    scenario_run_complete_fail_abort,
    scenario_execute,
    scenario_sdk_inside,
    scenario_queue_order,
    scenario_watchdog,
    scenario_served_queue,
    scenario_two_agents,
]


def main():
    wanted = sys.argv[1:]
    state = {"agents": []}
    passed = failed = 0
    try:
        for scenario in SCENARIOS:
            name = scenario.__name__.removeprefix("scenario_")
            if wanted and name not in wanted:
                continue
            started = time.time()
            try:
                scenario(state)
            except Exception:
                failed += 1
                print(f"FAILED {name} ({time.time() - started:.1f} s)")
                traceback.print_exc()
            else:
                passed += 1
                print(f"ok {name} ({time.time() - started:.1f} s)")
            sys.stdout.flush()
    finally:
        for agent in state["agents"]:
            agent.stop()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
