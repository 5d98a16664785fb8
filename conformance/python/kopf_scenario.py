"""kopf against tpr-apiserver: an operator handles MysqlDb objects.

Usage: kopf_scenario.py KUBECONFIG

Runs kopf_operator.py (`python -m kopf run --standalone -A`) with that
kubeconfig. MysqlDb `orders` is created (status written back, kopf's
finalizer added, an Event posted), resized (status follows) and deleted
(the delete handler runs, kopf removes its finalizer, the object goes).
Then the operator is stopped; while it is down three objects are created
and a handled one (`users`) is resized; started again, it catches up: the
three are created, `users` is updated, and nothing is handled twice. At the
end every (verb, object) was handled exactly once. Prints one line per step;
exits non-zero (with the reason, and the operator's output) on the first
failure. Every wait is bounded.
"""

import collections
import os
import signal
import subprocess
import sys
import tempfile
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

HERE = os.path.dirname(os.path.abspath(__file__))
OPERATOR = os.path.join(HERE, "kopf_operator.py")
FINALIZER = "prsn.io/kopf-finalizer"  # as kopf_operator.py sets it
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"
GROUP, VERSION, PLURAL, NS = "prsn.io", "v1", "mysqldbs", "default"
TIMEOUT = 30


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print(f"ok: {what}", flush=True)


class Operator:
    """One `kopf run` process; its stdout and stderr go to files."""

    def __init__(self, kubeconfig, run):
        self.run = run
        self.out = tempfile.NamedTemporaryFile(prefix=f"kopf-{run}-", suffix=".out")
        self.err = tempfile.NamedTemporaryFile(prefix=f"kopf-{run}-", suffix=".err")
        cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", OPERATOR]
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, "KUBECONFIG": kubeconfig},
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=self.err,
        )

    def handled(self):
        """The (verb, namespace/name) of every HANDLED line so far."""
        with open(self.out.name, encoding="utf-8", errors="replace") as f:
            return [tuple(line.split()[1:3]) for line in f if line.startswith("HANDLED ")]

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within 20 s; True if it exited by itself."""
        if self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False

    def dump(self):
        for name, f in (("stdout", self.out), ("stderr", self.err)):
            with open(f.name, encoding="utf-8", errors="replace") as text:
                print(f"--- operator run {self.run} {name} ---\n{text.read()}", file=sys.stderr, flush=True)


def wait_for(what, probe, operator=None, timeout=TIMEOUT):
    """Polls `probe` until it returns something truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if operator is not None and operator.proc.poll() is not None:
            raise Failed(f"{what}: the operator exited with {operator.proc.returncode}")
        try:
            value = probe()
            if value:
                print(f"ok: {what}", flush=True)
                return value
        except (ApiException, ValueError, KeyError, TypeError) as e:
            last_error = e
        time.sleep(0.2)
    raise Failed(f"{what} (not within {timeout} s; last error: {last_error!r})")


def main():
    kubeconfig = sys.argv[1]
    api_client = config.new_client_from_config(config_file=kubeconfig)
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    operators = []
    passed = False

    def start():
        op = Operator(kubeconfig, len(operators) + 1)
        operators.append(op)
        return op

    def create(name, size):
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MysqlDb", "metadata": {"name": name}, "engine_version": "5.6.23", "instance_size": size}
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    def resize(name, size):
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, {"instance_size": size})

    def get(name):
        return custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    def gone(name):
        try:
            get(name)
            return False
        except ApiException as e:
            if e.status == 404:
                return True
            raise

    def handled_all():
        return [h for op in operators for h in op.handled()]

    def was_handled(verb, name):
        return lambda: (verb, f"{NS}/{name}") in handled_all()

    def settled(name, size):
        """Status written for `size`, kopf's finalizer on, its last-handled state stored for `size`."""
        obj = get(name)
        meta = obj["metadata"]
        return (
            obj.get("status", {}).get("phase") == "Ready"
            and obj["status"].get("size") == size
            and FINALIZER in (meta.get("finalizers") or [])
            and f'"instance_size":"{size}"' in (meta.get("annotations") or {}).get(LAST_HANDLED, "")
        )

    try:
        op = start()

        # Create: handled once, status written back, finalizer added, an Event posted.
        create("orders", "small")
        wait_for("create handled", was_handled("create", "orders"), op)
        wait_for("status, finalizer and last-handled state written", lambda: settled("orders", "small"), op)

        def event_for_orders():
            events = core.list_namespaced_event(NS).items
            return [e for e in events if e.involved_object.name == "orders" and e.involved_object.kind == "MysqlDb"]

        events = wait_for("kopf posted an Event for orders", event_for_orders, op)
        check(events[0].source.component == "kopf" and events[0].reason == "Provisioned", "the Event's source and reason")

        # Update: the new size lands in status.
        resize("orders", "large")
        wait_for("update handled", was_handled("update", "orders"), op)
        wait_for("status follows the update", lambda: settled("orders", "large"), op)

        # Delete: the finalizer holds the object until the delete handler ran, then it goes.
        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "orders")
        wait_for("delete handled", was_handled("delete", "orders"), op)
        wait_for("kopf removed its finalizer and orders is gone", lambda: gone("orders"), op)

        # One object handled before a restart stays, to be updated while the operator is down.
        create("users", "small")
        wait_for("users created and settled", lambda: settled("users", "small"), op)

        check(op.stop(), "operator stopped on SIGTERM")

        # While the operator is down: three new objects, and `users` resized.
        for i in (1, 2, 3):
            create(f"catchup-{i}", f"size-{i}")
        resize("users", "medium")
        check(not any(FINALIZER in (get(f"catchup-{i}")["metadata"].get("finalizers") or []) for i in (1, 2, 3)),
              "objects created while the operator is down are untouched")

        # Started again: it catches up from its initial list.
        op = start()
        for i in (1, 2, 3):
            wait_for(f"catchup-{i} handled after restart", lambda i=i: settled(f"catchup-{i}", f"size-{i}"), op)
        wait_for("users' resize while down handled as an update", lambda: settled("users", "medium"), op)

        # Clean up through the operator: every delete handled, every object gone.
        for name in ("users", "catchup-1", "catchup-2", "catchup-3"):
            custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
        for name in ("users", "catchup-1", "catchup-2", "catchup-3"):
            wait_for(f"{name} deleted through the operator", lambda name=name: gone(name), op)

        time.sleep(2)  # a late duplicate would show up here
        check(op.stop(), "operator stopped on SIGTERM again")

        counts = collections.Counter(handled_all())
        expected = collections.Counter(
            [("create", f"{NS}/{n}") for n in ("orders", "users", "catchup-1", "catchup-2", "catchup-3")]
            + [("update", f"{NS}/{n}") for n in ("orders", "users")]
            + [("delete", f"{NS}/{n}") for n in ("orders", "users", "catchup-1", "catchup-2", "catchup-3")]
        )
        check(counts == expected, f"each (verb, object) handled exactly once: {sorted(counts.items())}")
        passed = True
    except Failed as e:
        print(f"FAILED: {e}", flush=True)
    except Exception as e:  # an API call refused outside a wait
        print(f"FAILED: {e!r}", flush=True)
    finally:
        for op in operators:
            op.stop()
        if not passed:
            for op in operators:
                op.dump()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
