"""A minimal kopf operator for the seed's MysqlDb objects (prsn.io/v1, plural
mysqldbs; fields `engine_version` and `instance_size`).

Run it against tpr-apiserver with the kubeconfig the server wrote:

    KUBECONFIG=<data-dir>/kubeconfig kopf run --standalone --all-namespaces kopf_operator.py

Each handler prints one `HANDLED <verb> <namespace>/<name>` line to stdout,
so that a test can count that no object is handled twice.
"""

import logging
import sys

import kopf

FINALIZER = "prsn.io/kopf-finalizer"


@kopf.on.login()
def login(**kwargs):
    # Credentials from $KUBECONFIG only (server, CA, bearer token), never in-cluster ones.
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.peering.standalone = True  # no KopfPeering objects needed (as --standalone)
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 30  # re-watch every 30 s, from the last resourceVersion


def handled(verb, namespace, name):
    # One write per line: handlers run in threads, and print() writes the newline apart.
    sys.stdout.write(f"HANDLED {verb} {namespace}/{name}\n")
    sys.stdout.flush()


@kopf.on.create("prsn.io", "v1", "mysqldbs")
def create(body, name, namespace, patch, **_):
    size = body.get("instance_size")
    patch.status["phase"] = "Ready"
    patch.status["size"] = size
    kopf.info(body, reason="Provisioned", message=f"MysqlDb {name} is ready ({size})")
    handled("create", namespace, name)


@kopf.on.update("prsn.io", "v1", "mysqldbs")
def update(body, name, namespace, patch, logger, **_):
    size = body.get("instance_size")
    logger.info(f"resizing to {size}")
    patch.status["size"] = size
    handled("update", namespace, name)


@kopf.on.delete("prsn.io", "v1", "mysqldbs")
def delete(name, namespace, logger, **_):
    # kopf's finalizer holds the object until this handler has succeeded.
    logger.info(f"dropping {namespace}/{name}")
    handled("delete", namespace, name)
