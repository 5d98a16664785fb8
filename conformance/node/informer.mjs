// The @kubernetes/client-node informer against tpr-apiserver.
//
// Usage: node informer.mjs KUBECONFIG NAMESPACE
//
// makeInformer (list through CustomObjectsApi.listNamespacedCustomObject, then
// watch=true from the list's resourceVersion) on prsn.io/v1 mysqldbs in
// NAMESPACE. The caller creates MysqlDb `preexisting` there first: the
// informer's initial list must deliver it as add. Then this script creates
// `orders` (size small), merge-patches it to size large and deletes it, and the
// informer must see add, update, delete of `orders`, in that order, within 20 s.
// Prints one `ok: <step>` line per step; on the first failure prints
// `FAILED: <what>` and exits 1. Always stops the informer and exits.

import * as k8s from '@kubernetes/client-node';

const DEADLINE_MS = 20_000;
const started = Date.now();

if (process.argv.length !== 4) {
    console.error('usage: node informer.mjs KUBECONFIG NAMESPACE');
    process.exit(2);
}
const [kubeconfigPath, namespace] = process.argv.slice(2);

let informer = null;
let stopping = false;

async function finish(code) {
    stopping = true;
    if (informer) {
        try {
            await informer.stop();
        } catch {
            // exiting anyway
        }
    }
    process.exit(code);
}

function fail(what) {
    console.log(`FAILED: ${what}`);
    return finish(1);
}

function ok(what) {
    console.log(`ok: ${what}`);
}

function check(cond, what) {
    if (!cond) {
        throw new CheckFailed(what);
    }
    ok(what);
}

class CheckFailed extends Error {}

// Everything the informer delivered, in order.
const events = [];
let wake = () => {};

function describe(e) {
    if (e.verb === 'error') {
        return `error(${e.detail})`;
    }
    return `${e.verb}(${e.name}${e.size === undefined ? '' : `, size ${e.size}`})`;
}

function record(verb, obj) {
    events.push({ verb, name: obj?.metadata?.name, size: obj?.spec?.size, rv: obj?.metadata?.resourceVersion });
    wake();
}

function errorText(err) {
    if (err === undefined || err === null) {
        return String(err);
    }
    const parts = [err.message || String(err)];
    if (err.statusCode !== undefined) parts.push(`statusCode ${err.statusCode}`);
    if (err.code !== undefined) parts.push(`code ${err.code}`);
    if (err.body !== undefined) parts.push(`body ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body)}`);
    return parts.join('; ');
}

// Waits (bounded by the overall deadline) until `pred(events)` holds; an
// informer error fails at once (the informer does not restart after one).
async function waitFor(pred, what) {
    for (;;) {
        const err = events.find((e) => e.verb === 'error');
        if (err) {
            throw new CheckFailed(`${what}: informer error: ${err.detail} (events: ${events.map(describe).join(', ')})`);
        }
        if (pred(events)) {
            return;
        }
        const left = DEADLINE_MS - (Date.now() - started);
        if (left <= 0) {
            throw new CheckFailed(`${what}: not seen within ${DEADLINE_MS / 1000} s (events: ${events.map(describe).join(', ')})`);
        }
        await new Promise((resolve) => {
            const t = setTimeout(resolve, Math.min(left, 200));
            wake = () => {
                clearTimeout(t);
                resolve();
            };
        });
    }
}

const ordersEvents = () => events.filter((e) => e.name === 'orders' && e.verb !== 'error');

async function main() {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const api = kc.makeApiClient(k8s.CustomObjectsApi);
    const where = { group: 'prsn.io', version: 'v1', namespace, plural: 'mysqldbs' };
    const path = `/apis/prsn.io/v1/namespaces/${encodeURIComponent(namespace)}/mysqldbs`;

    // client-node 1.x: the generated API resolves to the response body, which
    // is the KubernetesListObject ({metadata: {resourceVersion}, items}) that
    // ListWatch reads.
    informer = k8s.makeInformer(kc, path, () => api.listNamespacedCustomObject(where));
    informer.on(k8s.ADD, (obj) => record('add', obj));
    informer.on(k8s.UPDATE, (obj) => record('update', obj));
    informer.on(k8s.DELETE, (obj) => record('delete', obj));
    informer.on(k8s.ERROR, (err) => {
        if (!stopping) {
            events.push({ verb: 'error', detail: errorText(err) });
            wake();
        }
    });

    // start() resolves once the list has been delivered and the watch's
    // response headers have arrived.
    await informer.start();
    await waitFor(() => true, 'informer start');
    ok('informer started (list + watch)');

    const initial = events.filter((e) => e.verb === 'add').map((e) => e.name);
    check(initial.includes('preexisting'), `initial list delivers preexisting as add (adds: ${JSON.stringify(initial)})`);
    check(
        informer.get('preexisting', namespace)?.metadata?.name === 'preexisting',
        'informer cache holds preexisting',
    );
    check(!initial.includes('orders'), 'orders does not exist yet');

    const created = await api.createNamespacedCustomObject({
        ...where,
        body: {
            apiVersion: 'prsn.io/v1',
            kind: 'MysqlDb',
            metadata: { name: 'orders' },
            spec: { size: 'small' },
        },
    });
    check(created?.metadata?.name === 'orders' && created?.spec?.size === 'small', 'create orders (size small)');
    await waitFor(() => ordersEvents().length >= 1, 'informer add(orders)');
    const first = ordersEvents()[0];
    check(first.verb === 'add' && first.size === 'small', `informer saw ${describe(first)} (want add(orders, size small))`);

    // Merge patch: client-node 1.x would otherwise send application/json-patch+json.
    const patched = await api.patchNamespacedCustomObject(
        { ...where, name: 'orders', body: { spec: { size: 'large' } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    check(patched?.spec?.size === 'large', 'merge patch orders to size large');
    await waitFor(() => ordersEvents().length >= 2, 'informer update(orders)');
    const second = ordersEvents()[1];
    check(
        second.verb === 'update' && second.size === 'large',
        `informer saw ${describe(second)} (want update(orders, size large))`,
    );
    check(informer.get('orders', namespace)?.spec?.size === 'large', 'informer cache holds orders at size large');

    await api.deleteNamespacedCustomObject({ ...where, name: 'orders' });
    ok('delete orders');
    await waitFor(() => ordersEvents().length >= 3, 'informer delete(orders)');
    const third = ordersEvents()[2];
    check(third.verb === 'delete', `informer saw ${describe(third)} (want delete(orders))`);
    check(informer.get('orders', namespace) === undefined, 'informer cache no longer holds orders');

    // Nothing extra, and the order held throughout.
    const seen = ordersEvents().map((e) => (e.verb === 'delete' ? `delete(${e.name})` : describe(e)));
    const want = ['add(orders, size small)', 'update(orders, size large)', 'delete(orders)'];
    check(JSON.stringify(seen) === JSON.stringify(want), `informer saw orders events in order: ${seen.join(', ')}`);
    const errors = events.filter((e) => e.verb === 'error');
    check(errors.length === 0, 'no informer errors');
}

try {
    await main();
    await finish(0);
} catch (err) {
    if (err instanceof CheckFailed) {
        await fail(err.message);
    } else {
        await fail(`exception: ${errorText(err)}`);
    }
}
