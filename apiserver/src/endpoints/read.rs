//! Reads: GET of one object and lists, from the type's watch cache
//! (consistent unless `resourceVersion` says otherwise), as JSON or Tables.

use std::collections::HashMap;
use std::sync::Arc;

use discovery::table::IncludeObject;
use http::StatusCode;
use serde_json::{json, Value};
use storage::{KeyValue, ListOptions, ReadRevision};

use super::resources::Call;
use super::respond::{self, Body};
use super::watch;
use super::{list_stream, negotiate};
use crate::registry;
use crate::registry::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;

type Response = http::Response<Body>;

/// GET of one object.
pub async fn get(call: &Call<'_>, name: &str) -> Result<Response, ApiError> {
    let revision = read_revision(&call.req.query)?;
    Ok(match table_output(call)? {
        Some(t) => respond::json(StatusCode::OK, &t.single(registry::get_cached(call.scope, name, revision).await?)),
        None => respond::json_bytes(StatusCode::OK, registry::get_cached_bytes(call.scope, name, revision).await?),
    })
}

/// A list: selectors, paging with continue tokens, Tables.
pub async fn list(call: &Call<'_>) -> Result<Response, ApiError> {
    list_at(call, table_output(call)?).await
}

/// The read revision of `resourceVersion` and `resourceVersionMatch`.
pub fn read_revision(q: &HashMap<String, String>) -> Result<ReadRevision, ApiError> {
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let parse = |s: &str| parse_revision(s);
    Ok(match (rv, q.get("resourceVersionMatch").map(String::as_str)) {
        ("", None | Some("")) => ReadRevision::Consistent,
        ("", Some(m)) => {
            return Err(ApiError::bad_request(format!("resourceVersionMatch {m:?} needs a resourceVersion")))
        }
        ("0", None | Some("") | Some("NotOlderThan")) => ReadRevision::Any,
        ("0", Some("Exact")) => {
            return Err(ApiError::bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""))
        }
        (r, None | Some("") | Some("NotOlderThan")) => ReadRevision::NotOlderThan(parse(r)?),
        (r, Some("Exact")) => ReadRevision::Exact(parse(r)?),
        (_, Some(m)) => {
            return Err(ApiError::bad_request(format!("unknown resourceVersionMatch {m:?}; use NotOlderThan or Exact")))
        }
    })
}

/// A resourceVersion: a non-negative integer (400 otherwise).
pub fn parse_revision(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be a non-negative integer")))
}

/// Tables when the Accept header asks for them (`kubectl get`), else `None`.
pub fn table_output(call: &Call<'_>) -> Result<Option<watch::TableOutput>, ApiError> {
    match negotiate::output(&call.parts.headers)? {
        negotiate::Output::Json => Ok(None),
        negotiate::Output::Table(version) => {
            let include = IncludeObject::parse(call.param("includeObject")).map_err(ApiError::bad_request)?;
            Ok(Some(watch::TableOutput { version, include, resource: call.scope.rt.api.clone() }))
        }
    }
}

async fn list_at(call: &Call<'_>, table: Option<watch::TableOutput>) -> Result<Response, ApiError> {
    let (scope, q) = (call.scope, &call.req.query);
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse_for(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        scope.rt.builtin.map_or(&[], |b| b.field_labels()),
    )?;
    let selecting = !labels.is_empty() || !fields.is_empty();
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let prefix = scope.rt.list_prefix(scope.namespace);
    let (revision, start) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, start) = crate::registry::paging::decode_continue(token)?;
            if !start.starts_with(&prefix) {
                return Err(ApiError::bad_request("the continue token does not belong to this list"));
            }
            (ReadRevision::Exact(rv), Some(start))
        }
        None => (read_revision(q)?, None),
    };
    let target = scope.target("");
    let api_version = scope.rt.api_version(scope.version);
    // The matching items (decoded only when a selector or a Table needs them).
    let mut items: Vec<Arc<KeyValue>> = Vec::new();
    let mut objects: Vec<Value> = Vec::new();
    let mut corrupt = Vec::new();
    let mut opts = ListOptions { prefix: prefix.clone(), start, limit: 0, revision };
    // Read in pages until `limit` matching objects are found (or the end).
    let (read_at, next) = 'pages: loop {
        opts.limit = if limit == 0 { 0 } else { (limit - items.len()).max(64) };
        let page = scope.rt.cache.list(&opts).await.map_err(|e| match e {
            storage::StorageError::Compacted { .. } | storage::StorageError::TooOld { .. } if opts.start.is_some() => ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            e => ApiError::from_storage(e, &target),
        })?;
        opts.revision = ReadRevision::Exact(page.revision);
        for (i, kv) in page.items.iter().enumerate() {
            if selecting || table.is_some() {
                let obj = match registry::decode(kv, &api_version) {
                    Ok(obj) => obj,
                    Err(e) => {
                        note_corrupt(&mut corrupt, kv, e);
                        continue;
                    }
                };
                if !(labels.matches(&obj) && fields.matches(&obj)) {
                    continue;
                }
                if table.is_some() {
                    objects.push(obj);
                }
            }
            items.push(kv.clone());
            if limit > 0 && items.len() == limit {
                let after = page.items.len() - (i + 1) + page.remaining;
                let next = (after > 0).then(|| Next { key: format!("{}\0", kv.key), after });
                break 'pages (page.revision, next);
            }
        }
        match page.items.last() {
            Some(last) if page.remaining > 0 && limit > 0 => opts.start = Some(format!("{}\0", last.key)),
            _ => break (page.revision, None),
        }
    };
    if table.is_none() {
        corrupt = list_stream::check_items(scope.rt, &items, &api_version);
    }
    if !corrupt.is_empty() {
        return Err(ApiError::storage_read_error(&target, corrupt));
    }
    let mut metadata = json!({"resourceVersion": read_at.to_string()});
    if let Some(next) = next {
        metadata["continue"] = Value::String(crate::registry::paging::encode_continue(read_at, &next.key));
        // As kube-apiserver: how many objects follow, unless a selector
        // makes that count a guess.
        if !selecting {
            metadata["remainingItemCount"] = json!(next.after);
        }
    }
    if let Some(t) = table {
        return Ok(respond::json(StatusCode::OK, &t.table(objects, metadata)));
    }
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        Value::String(format!("{}List", scope.rt.kind)),
        Value::String(api_version.clone()),
        metadata
    );
    Ok(list_stream::response(head, call.req.rt.clone(), api_version, items))
}

/// Where a limited list goes on: the continue key and how many keys follow.
struct Next {
    key: String,
    after: usize,
}

/// Most unreadable objects named in one StorageReadError, as kube-apiserver.
pub const MAX_CORRUPT_NAMED: usize = 100;

/// Notes an object a list cannot read, for its StorageReadError.
pub fn note_corrupt(causes: &mut Vec<crate::status::Cause>, kv: &storage::KeyValue, e: ApiError) {
    tracing::error!(key = %kv.key, error = %e.message, "a stored object cannot be read");
    match causes.len() {
        n if n < MAX_CORRUPT_NAMED => causes.push(crate::status::Cause {
            reason: "UnexpectedServerResponse",
            message: e.message,
            field: kv.key.clone(),
        }),
        n if n == MAX_CORRUPT_NAMED => causes.push(crate::status::Cause {
            reason: "TooMany",
            message: "too many errors, the list is truncated".into(),
            field: String::new(),
        }),
        _ => {}
    }
}
