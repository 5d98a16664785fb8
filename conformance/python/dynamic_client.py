"""The Python kubernetes client against tpr-apiserver.

Usage: dynamic_client.py KUBECONFIG

DynamicClient finds MysqlDb by discovery and does create, get, list, patch,
replace and delete; then watch.Watch().stream, resumed from a list's
resourceVersion, must see every later change in order. Prints one line per
step; exits non-zero (with the reason) on the first failure.
"""

import sys

from kubernetes import client, config, dynamic, watch


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def main():
    api_client = config.new_client_from_config(config_file=sys.argv[1])
    dyn = dynamic.DynamicClient(api_client)
    dbs = dyn.resources.get(api_version="prsn.io/v1", kind="MysqlDb")
    check(dbs.name == "mysqldbs" and dbs.namespaced, "discovery finds mysqldbs (namespaced)")

    body = {"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "orders"}, "spec": {"size": "small"}}
    created = dbs.create(body=body, namespace="default")
    check(created.metadata.name == "orders" and created.spec.size == "small", "create")
    got = dbs.get(name="orders", namespace="default")
    check(got.metadata.uid == created.metadata.uid, "get")
    listed = dbs.get(namespace="default")
    check([i.metadata.name for i in listed.items] == ["orders"], "list")
    patched = dbs.patch(
        name="orders",
        namespace="default",
        body={"spec": {"size": "large"}},
        content_type="application/merge-patch+json",
    )
    check(patched.spec.size == "large", "merge patch")
    current = dbs.get(name="orders", namespace="default").to_dict()
    current["spec"]["size"] = "medium"
    replaced = dbs.replace(body=current, namespace="default")
    check(replaced.spec.size == "medium", "replace")
    dbs.delete(name="orders", namespace="default")
    check([i.metadata.name for i in dbs.get(namespace="default").items] == [], "delete")

    # A resumed watch sees every change made after the list, in order.
    custom = client.CustomObjectsApi(api_client)
    start = custom.list_namespaced_custom_object("prsn.io", "v1", "default", "mysqldbs")["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object("prsn.io", "v1", "default", "mysqldbs", {
        "apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "w"}, "spec": {"n": 1}})
    for n in range(2, 6):
        custom.patch_namespaced_custom_object("prsn.io", "v1", "default", "mysqldbs", "w", {"spec": {"n": n}})
    custom.delete_namespaced_custom_object("prsn.io", "v1", "default", "mysqldbs", "w")
    seen = []
    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object, "prsn.io", "v1", "default", "mysqldbs",
        resource_version=start, timeout_seconds=10)
    for event in stream:
        obj = event["object"]
        seen.append((event["type"], obj["spec"]["n"]))
        if event["type"] == "DELETED":
            break
    expected = [("ADDED", 1)] + [("MODIFIED", n) for n in range(2, 6)] + [("DELETED", 5)]
    check(seen == expected, f"resumed watch saw {seen}")


if __name__ == "__main__":
    main()
