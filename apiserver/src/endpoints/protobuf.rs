//! Protobuf request bodies of the built-in types (`application/vnd.kubernetes.protobuf`).
//! kubectl's typed commands (`create namespace`, `create configmap`,
//! `create secret`, `auth can-i`) and client-go's typed clients send them,
//! with the `DeleteOptions` of their deletes:
//! the `k8s\0` envelope around a `runtime.Unknown` holding the object. They
//! are read into the same JSON object a JSON client would send (messages
//! declared with `prost`, the field numbers of k8s.io/api's generated.proto);
//! answers stay JSON, which these clients also accept.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{json, Map, Value};

use crate::status::ApiError;

/// The media type.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    kind: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct Lease {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<LeaseSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct LeaseSpec {
    #[prost(string, optional, tag = "1")]
    holder_identity: Option<String>,
    #[prost(int32, optional, tag = "2")]
    lease_duration_seconds: Option<i32>,
    #[prost(message, optional, tag = "3")]
    acquire_time: Option<Time>,
    #[prost(message, optional, tag = "4")]
    renew_time: Option<Time>,
    #[prost(int32, optional, tag = "5")]
    lease_transitions: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    field_path: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct EventSource {
    #[prost(string, optional, tag = "1")]
    component: Option<String>,
    #[prost(string, optional, tag = "2")]
    host: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct EventSeries {
    #[prost(int32, optional, tag = "1")]
    count: Option<i32>,
    #[prost(message, optional, tag = "2")]
    last_observed_time: Option<Time>,
}

#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    involved_object: Option<ObjectReference>,
    #[prost(string, optional, tag = "3")]
    reason: Option<String>,
    #[prost(string, optional, tag = "4")]
    message: Option<String>,
    #[prost(message, optional, tag = "5")]
    source: Option<EventSource>,
    #[prost(message, optional, tag = "6")]
    first_timestamp: Option<Time>,
    #[prost(message, optional, tag = "7")]
    last_timestamp: Option<Time>,
    #[prost(int32, optional, tag = "8")]
    count: Option<i32>,
    #[prost(string, optional, tag = "9")]
    kind: Option<String>,
    #[prost(message, optional, tag = "10")]
    event_time: Option<Time>,
    #[prost(message, optional, tag = "11")]
    series: Option<EventSeries>,
    #[prost(string, optional, tag = "12")]
    action: Option<String>,
    #[prost(message, optional, tag = "13")]
    related: Option<ObjectReference>,
    #[prost(string, optional, tag = "14")]
    reporting_component: Option<String>,
    #[prost(string, optional, tag = "15")]
    reporting_instance: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<AccessReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
    #[prost(string, optional, tag = "3")]
    group: Option<String>,
    #[prost(string, optional, tag = "4")]
    version: Option<String>,
    #[prost(string, optional, tag = "5")]
    resource: Option<String>,
    #[prost(string, optional, tag = "6")]
    subresource: Option<String>,
    #[prost(string, optional, tag = "7")]
    name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, optional, tag = "1")]
    path: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<RulesReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReviewSpec {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
}

/// `meta.v1.DeleteOptions`, as client-go's typed clients send it with a
/// delete (in every group version).
#[derive(Clone, PartialEq, Message)]
struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    grace_period_seconds: Option<i64>,
    #[prost(message, optional, tag = "2")]
    preconditions: Option<Preconditions>,
    #[prost(bool, optional, tag = "3")]
    orphan_dependents: Option<bool>,
    #[prost(string, optional, tag = "4")]
    propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    dry_run: Vec<String>,
    #[prost(bool, optional, tag = "6")]
    ignore_store_read_error_with_cluster_breaking_potential: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Preconditions {
    #[prost(string, optional, tag = "1")]
    uid: Option<String>,
    #[prost(string, optional, tag = "2")]
    resource_version: Option<String>,
}

/// A JSON object of the fields that are set (proto2 writes empty strings; JSON omits them).
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn text(mut self, key: &str, v: &Option<String>) -> Self {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            self.0.insert(key.into(), json!(v));
        }
        self
    }

    fn value(mut self, key: &str, v: Option<Value>) -> Self {
        if let Some(v) = v.filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty())) {
            self.0.insert(key.into(), v);
        }
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn b64(bytes: &[u8]) -> Value {
    use base64::Engine;
    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn time(t: &Option<Time>, micros: bool) -> Option<Value> {
    let t = t.as_ref()?;
    let secs = u64::try_from(t.seconds.unwrap_or(0)).ok()?;
    let nanos = u32::try_from(t.nanos.unwrap_or(0)).unwrap_or(0);
    let at = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    Some(json!(if micros {
        humantime::format_rfc3339_micros(at).to_string()
    } else {
        humantime::format_rfc3339_seconds(at).to_string()
    }))
}

fn map_of<V>(m: &BTreeMap<String, V>, f: impl Fn(&V) -> Value) -> Option<Value> {
    (!m.is_empty()).then(|| Value::Object(m.iter().map(|(k, v)| (k.clone(), f(v))).collect()))
}

fn meta(m: &Option<ObjectMeta>) -> Value {
    let Some(m) = m else { return json!({}) };
    let owners: Vec<Value> = m
        .owner_references
        .iter()
        .map(|o| {
            let mut v = Fields::default()
                .text("apiVersion", &o.api_version)
                .text("kind", &o.kind)
                .text("name", &o.name)
                .text("uid", &o.uid)
                .done();
            if let Some(c) = o.controller {
                v["controller"] = json!(c);
            }
            if let Some(b) = o.block_owner_deletion {
                v["blockOwnerDeletion"] = json!(b);
            }
            v
        })
        .collect();
    Fields::default()
        .text("name", &m.name)
        .text("generateName", &m.generate_name)
        .text("namespace", &m.namespace)
        .text("uid", &m.uid)
        .text("resourceVersion", &m.resource_version)
        .value("labels", map_of(&m.labels, |v| json!(v)))
        .value("annotations", map_of(&m.annotations, |v| json!(v)))
        .value("ownerReferences", (!owners.is_empty()).then(|| json!(owners)))
        .value("finalizers", (!m.finalizers.is_empty()).then(|| json!(m.finalizers)))
        .done()
}

fn reference(r: &Option<ObjectReference>) -> Option<Value> {
    let r = r.as_ref()?;
    Some(
        Fields::default()
            .text("kind", &r.kind)
            .text("namespace", &r.namespace)
            .text("name", &r.name)
            .text("uid", &r.uid)
            .text("apiVersion", &r.api_version)
            .text("resourceVersion", &r.resource_version)
            .text("fieldPath", &r.field_path)
            .done(),
    )
}

fn unsupported(what: &str) -> ApiError {
    ApiError::unsupported_media_type(&format!("{PROTOBUF} ({what})"), &["application/json"])
}

/// The object of a protobuf body, as JSON (415 for kinds it does not know, 400 for bad bytes).
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |e: prost::DecodeError| ApiError::bad_request(format!("the protobuf body cannot be read: {e}"));
    let rest =
        body.strip_prefix(MAGIC).ok_or_else(|| ApiError::bad_request("the protobuf body has no k8s envelope"))?;
    let unknown = Unknown::decode(rest).map_err(bad)?;
    if unknown.content_encoding.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(unsupported("content encoding"));
    }
    let tm = unknown.type_meta.unwrap_or_default();
    let (api_version, kind) = (tm.api_version.unwrap_or_default(), tm.kind.unwrap_or_default());
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            let n = Namespace::decode(raw).map_err(bad)?;
            let spec = n.spec.filter(|s| !s.finalizers.is_empty()).map(|s| json!({"finalizers": s.finalizers}));
            Fields::default().value("metadata", Some(meta(&n.metadata))).value("spec", spec).done()
        }
        ("v1", "ConfigMap") => {
            let c = ConfigMap::decode(raw).map_err(bad)?;
            Fields::default()
                .value("metadata", Some(meta(&c.metadata)))
                .value("data", map_of(&c.data, |v| json!(v)))
                .value("binaryData", map_of(&c.binary_data, |v| b64(v)))
                .value("immutable", c.immutable.map(Value::from))
                .done()
        }
        ("v1", "Secret") => {
            let s = Secret::decode(raw).map_err(bad)?;
            Fields::default()
                .value("metadata", Some(meta(&s.metadata)))
                .value("data", map_of(&s.data, |v| b64(v)))
                .value("stringData", map_of(&s.string_data, |v| json!(v)))
                .text("type", &s.kind)
                .value("immutable", s.immutable.map(Value::from))
                .done()
        }
        ("coordination.k8s.io/v1", "Lease") => {
            let l = Lease::decode(raw).map_err(bad)?;
            let spec = l.spec.map(|s| {
                Fields::default()
                    .text("holderIdentity", &s.holder_identity)
                    .value("leaseDurationSeconds", s.lease_duration_seconds.map(Value::from))
                    .value("acquireTime", time(&s.acquire_time, true))
                    .value("renewTime", time(&s.renew_time, true))
                    .value("leaseTransitions", s.lease_transitions.map(Value::from))
                    .done()
            });
            Fields::default().value("metadata", Some(meta(&l.metadata))).value("spec", spec).done()
        }
        ("v1", "Event") => {
            let e = Event::decode(raw).map_err(bad)?;
            let source =
                e.source.map(|s| Fields::default().text("component", &s.component).text("host", &s.host).done());
            let series = e.series.map(|s| {
                Fields::default()
                    .value("count", s.count.map(Value::from))
                    .value("lastObservedTime", time(&s.last_observed_time, true))
                    .done()
            });
            Fields::default()
                .value("metadata", Some(meta(&e.metadata)))
                .value("involvedObject", reference(&e.involved_object))
                .text("reason", &e.reason)
                .text("message", &e.message)
                .value("source", source)
                .value("firstTimestamp", time(&e.first_timestamp, false))
                .value("lastTimestamp", time(&e.last_timestamp, false))
                .value("count", e.count.filter(|c| *c != 0).map(Value::from))
                .text("type", &e.kind)
                .value("eventTime", time(&e.event_time, true))
                .value("series", series)
                .text("action", &e.action)
                .value("related", reference(&e.related))
                .text("reportingComponent", &e.reporting_component)
                .text("reportingInstance", &e.reporting_instance)
                .done()
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            let r = AccessReview::decode(raw).map_err(bad)?;
            let spec = r.spec.unwrap_or_default();
            let resource = spec.resource_attributes.map(|a| {
                Fields::default()
                    .text("namespace", &a.namespace)
                    .text("verb", &a.verb)
                    .text("group", &a.group)
                    .text("version", &a.version)
                    .text("resource", &a.resource)
                    .text("subresource", &a.subresource)
                    .text("name", &a.name)
                    .done()
            });
            let path = spec
                .non_resource_attributes
                .map(|a| Fields::default().text("path", &a.path).text("verb", &a.verb).done());
            let spec =
                Fields::default().value("resourceAttributes", resource).value("nonResourceAttributes", path).done();
            json!({"metadata": meta(&r.metadata), "spec": spec})
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            let r = RulesReview::decode(raw).map_err(bad)?;
            let spec = Fields::default().text("namespace", &r.spec.unwrap_or_default().namespace).done();
            json!({"metadata": meta(&r.metadata), "spec": spec})
        }
        (_, "DeleteOptions") => {
            let d = DeleteOptions::decode(raw).map_err(bad)?;
            let pre = d
                .preconditions
                .map(|p| Fields::default().text("uid", &p.uid).text("resourceVersion", &p.resource_version).done());
            let dry_run = (!d.dry_run.is_empty()).then(|| json!(d.dry_run));
            Fields::default()
                .value("gracePeriodSeconds", d.grace_period_seconds.map(Value::from))
                .value("preconditions", pre)
                .value("orphanDependents", d.orphan_dependents.map(Value::from))
                .text("propagationPolicy", &d.propagation_policy)
                .value("dryRun", dry_run)
                .value(
                    "ignoreStoreReadErrorWithClusterBreakingPotential",
                    d.ignore_store_read_error_with_cluster_breaking_potential.map(Value::from),
                )
                .done()
        }
        _ => return Err(unsupported(&format!("{api_version} {kind}"))),
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
        };
        [MAGIC.to_vec(), u.encode_to_vec()].concat()
    }

    #[test]
    fn delete_options_read_as_json() {
        let d = DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some("u-1".into()), resource_version: Some("7".into()) }),
            orphan_dependents: None,
            propagation_policy: Some("Background".into()),
            dry_run: vec!["All".into()],
            ignore_store_read_error_with_cluster_breaking_potential: None,
        };
        let v = decode(&envelope("coordination.k8s.io/v1", "DeleteOptions", d.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u-1", "resourceVersion": "7"}, "propagationPolicy": "Background",
                "dryRun": ["All"],
            })
        );
        let empty = decode(&envelope("v1", "DeleteOptions", Vec::new())).unwrap();
        assert_eq!(empty, json!({"apiVersion": "v1", "kind": "DeleteOptions"}));
    }

    #[test]
    fn kubectl_bodies_read_as_json() {
        let ns = Namespace {
            metadata: Some(ObjectMeta { name: Some("x".into()), namespace: Some(String::new()), ..Default::default() }),
            spec: Some(NamespaceSpec::default()),
        };
        let v = decode(&envelope("v1", "Namespace", ns.encode_to_vec())).unwrap();
        assert_eq!(v, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}));
        let mut data = BTreeMap::new();
        data.insert("k".to_string(), b"v".to_vec());
        let s =
            Secret { metadata: None, data, kind: Some("Opaque".into()), string_data: BTreeMap::new(), immutable: None };
        let v = decode(&envelope("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!((v["data"]["k"].clone(), v["type"].clone()), (json!("dg=="), json!("Opaque")));
        let r = AccessReview {
            metadata: None,
            spec: Some(AccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some("create".into()),
                    resource: Some("mysqldbs".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
        };
        let v = decode(&envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", r.encode_to_vec())).unwrap();
        assert_eq!(v["spec"]["resourceAttributes"], json!({"verb": "create", "resource": "mysqldbs"}));
        assert_eq!(decode(&envelope("apps/v1", "Deployment", vec![])).unwrap_err().code, 415);
        assert_eq!(decode(b"k8s\0\xff\xff").unwrap_err().code, 400);
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
    }
}
