//! The resource types this server serves right now: the built-in
//! ThirdPartyResource type, one type per stored ThirdPartyResource, and,
//! when it runs alone, kube-apiserver's types of [`discovery::Builtin`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use discovery::Resource;
use storage::WatchCache;

/// One served resource type: its API description (names, versions, scope;
/// reached through `Deref`, so `rt.plural` reads it), where its objects are
/// stored, and its watch cache.
pub struct ResourceType {
    /// What discovery describes.
    pub api: Resource,
    /// Storage prefix of every object, with a trailing `/`.
    pub key_prefix: String,
    /// The cache that serves lists, gets and watches.
    pub cache: Arc<WatchCache>,
    /// The ThirdPartyResource that asks for it (none for built-in types).
    pub owner: Option<Owner>,
    /// Objects as GET answers them, encoded once per object version.
    pub encoded: EncodedObjects,
}

/// Objects as served, encoded once per version: by key, the mod revision,
/// the apiVersion and the JSON bytes (deterministic for those three), so a
/// repeated GET or list of an unchanged object is a copy, not a parse and an
/// encode. Bounded in entries and bytes; beyond either, it starts over.
#[derive(Default)]
pub struct EncodedObjects {
    memo: RwLock<Memo>,
}

#[derive(Default)]
struct Memo {
    map: std::collections::HashMap<String, (i64, String, bytes::Bytes)>,
    bytes: usize,
}

/// Most objects kept encoded per type.
const MAX_ENCODED: usize = 65_536;
/// Most bytes kept encoded per type.
const MAX_ENCODED_BYTES: usize = 128 << 20;

impl Memo {
    fn get(&self, key: &str, revision: i64, api_version: &str) -> Option<bytes::Bytes> {
        self.get_by(key, revision, |v| v == api_version)
    }

    fn get_by(&self, key: &str, revision: i64, served_as: impl Fn(&str) -> bool) -> Option<bytes::Bytes> {
        match self.map.get(key) {
            Some((rev, v, bytes)) if *rev == revision && served_as(v) => Some(bytes.clone()),
            _ => None,
        }
    }
}

impl EncodedObjects {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Memo> {
        self.memo.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes of `key` at `revision` as the apiVersion `group/version`
    /// (`version` in the core group) serves it, if encoded.
    pub fn get_in(&self, key: &str, revision: i64, group: &str, version: &str) -> Option<bytes::Bytes> {
        self.read().get_by(key, revision, |v| match group {
            "" => v == version,
            g => v.strip_prefix(g).and_then(|rest| rest.strip_prefix('/')) == Some(version),
        })
    }

    /// For each of `items`, its bytes as `api_version` serves it, if encoded
    /// (one lock for the lot).
    pub fn get_all(&self, items: &[Arc<storage::KeyValue>], api_version: &str) -> Vec<Option<bytes::Bytes>> {
        let memo = self.read();
        items.iter().map(|kv| memo.get(&kv.key, kv.mod_revision, api_version)).collect()
    }

    /// Keeps the bytes of `key` at `revision` for `api_version`.
    pub fn put(&self, key: &str, revision: i64, api_version: &str, bytes: bytes::Bytes) {
        let mut memo = self.memo.write().unwrap_or_else(|p| p.into_inner());
        let full = memo.map.len() >= MAX_ENCODED || memo.bytes + bytes.len() > MAX_ENCODED_BYTES;
        if full && !memo.map.contains_key(key) {
            memo.map.clear();
            memo.bytes = 0;
        }
        memo.bytes += bytes.len();
        if let Some((_, _, old)) = memo.map.insert(key.to_string(), (revision, api_version.to_string(), bytes)) {
            memo.bytes = memo.bytes.saturating_sub(old.len());
        }
    }
}

/// The ThirdPartyResource a type is served for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its `metadata.name`.
    pub name: String,
    /// Its `metadata.uid` (a TPR deleted and created again is another owner).
    pub uid: String,
}

impl std::ops::Deref for ResourceType {
    type Target = Resource;

    fn deref(&self) -> &Resource {
        &self.api
    }
}

/// The API descriptions of `types`, for discovery's documents.
pub fn described(types: &[Arc<ResourceType>]) -> Vec<&Resource> {
    types.iter().map(|t| &t.api).collect()
}

impl ResourceType {
    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) => format!("{}{ns}/{name}", self.key_prefix),
            None => format!("{}{name}", self.key_prefix),
        }
    }

    /// The storage prefix of a list: one namespace, or everything.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{}{ns}/", self.key_prefix),
            None => self.key_prefix.clone(),
        }
    }
}

/// The set of served types, keyed by group and resource name.
#[derive(Default)]
pub struct ServedTypes {
    /// By group, then plural: a request finds its type without a scan of
    /// every served type (there may be thousands of TPRs).
    types: RwLock<BTreeMap<String, BTreeMap<String, Arc<ResourceType>>>>,
    /// kube-apiserver's types are served (standalone): namespaces are
    /// enforced and the reviews answered.
    builtins: std::sync::atomic::AtomicBool,
}

/// A path's group, version and the segments after the version.
pub struct Resolved<'a> {
    /// The version as named in the path.
    pub version: String,
    /// The path segments after the version.
    pub rest: &'a [&'a str],
}

impl ServedTypes {
    /// Marks kube-apiserver's types as served (see [`crate::builtin`]).
    pub fn set_builtins(&self) {
        self.builtins.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when kube-apiserver's types are served (standalone).
    pub fn builtins(&self) -> bool {
        self.builtins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The reviews discovery lists (none unless [`Self::builtins`]).
    pub fn reviews(&self) -> Vec<Resource> {
        match self.builtins() {
            true => discovery::Builtin::REVIEWS.iter().map(|b| b.resource()).collect(),
            false => Vec::new(),
        }
    }

    /// The namespaced types whose objects are stored, each storage once
    /// (`events.k8s.io` events are `v1` events).
    pub fn namespaced_storage(&self) -> Vec<Arc<ResourceType>> {
        let mut seen = std::collections::BTreeSet::new();
        self.all().into_iter().filter(|t| t.namespaced && seen.insert(t.key_prefix.clone())).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, BTreeMap<String, Arc<ResourceType>>>> {
        self.types.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a type.
    pub fn insert(&self, t: Arc<ResourceType>) {
        let mut types = self.types.write().unwrap_or_else(|p| p.into_inner());
        types.entry(t.group.clone()).or_default().insert(t.plural.clone(), t);
    }

    /// Removes a type.
    pub fn remove(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let mut types = self.types.write().unwrap_or_else(|p| p.into_inner());
        let in_group = types.get_mut(group)?;
        let removed = in_group.remove(plural);
        if in_group.is_empty() {
            types.remove(group);
        }
        removed
    }

    /// The type `plural` of `group`.
    pub fn get(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read().get(group)?.get(plural).cloned()
    }

    /// Every served type, by group and plural.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.read().values().flat_map(BTreeMap::values).cloned().collect()
    }

    /// Matches `segments` (the path after `/apis/<group>/`) against the
    /// versions served in `group`; versions may contain `/` (`stable/v1`).
    pub fn resolve<'a>(&self, group: &str, segments: &'a [&'a str]) -> Option<Resolved<'a>> {
        let types = self.read();
        let in_group = types.get(group).into_iter().flat_map(BTreeMap::values);
        // The longest served version that prefixes the segments, and how many it spans.
        let mut best: Option<(&str, usize)> = None;
        for v in in_group.flat_map(|t| t.versions.iter()) {
            let n = v.split('/').count();
            let matches = segments.len() >= n && v.split('/').zip(segments).all(|(a, b)| a == *b);
            if matches && best.is_none_or(|(b, _)| b.len() < v.len()) {
                best = Some((v, n));
            }
        }
        let (version, n) = best?;
        Some(Resolved { version: version.to_string(), rest: &segments[n..] })
    }

    /// Every type of `group` that serves `version`.
    pub fn in_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        let types = self.read();
        let in_group = types.get(group).into_iter().flat_map(BTreeMap::values);
        in_group.filter(|t| t.versions.iter().any(|v| v == version)).cloned().collect()
    }

    /// The type `plural` of `group`, if it serves `version`.
    pub fn serving(&self, group: &str, plural: &str, version: &str) -> Option<Arc<ResourceType>> {
        let t = self.read().get(group)?.get(plural)?.clone();
        t.versions.iter().any(|v| v == version).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type `plural` of `group` serving `versions`, its cache on `store`.
    fn served_type(store: &Arc<dyn storage::Store>, group: &str, plural: &str, versions: &[&str]) -> Arc<ResourceType> {
        let key_prefix = format!("{}{group}/{plural}/", store.prefix());
        let cache = WatchCache::start(store.clone(), &key_prefix, storage::CacheConfig::default()).expect("cache");
        Arc::new(ResourceType {
            api: Resource {
                group: group.into(),
                versions: versions.iter().map(|v| v.to_string()).collect(),
                kind: "Thing".into(),
                plural: plural.into(),
                singular: "thing".into(),
                namespaced: true,
                builtin: None,
                description: String::new(),
            },
            key_prefix,
            cache: Arc::new(cache),
            owner: None,
            encoded: Default::default(),
        })
    }

    /// Lookups find a type among many groups by its group, plural and
    /// version, and nothing of another group with the same names.
    #[tokio::test]
    async fn types_are_found_by_group_plural_and_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn storage::Store> =
            Arc::new(storage::EmbeddedStore::open(&storage::EmbeddedConfig::new(dir.path())).expect("store"));
        let served = ServedTypes::default();
        for g in ["a.io", "b.io", "c.io"] {
            served.insert(served_type(&store, g, "things", &["v1"]));
        }
        served.insert(served_type(&store, "b.io", "others", &["v1", "stable/v2"]));
        served.insert(served_type(&store, "", "pods", &["v1"]));

        assert_eq!(served.all().len(), 5);
        let names: Vec<(String, String)> = served.all().iter().map(|t| (t.group.clone(), t.plural.clone())).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "every type, by group and plural");

        let found = served.serving("b.io", "others", "stable/v2").expect("served");
        assert_eq!((found.group.as_str(), found.plural.as_str()), ("b.io", "others"));
        assert!(served.serving("a.io", "others", "v1").is_none(), "another group's plural");
        assert!(served.serving("b.io", "things", "v2").is_none(), "a version not served");
        assert!(served.get("", "pods").is_some() && served.get("", "things").is_none());

        let segments = ["stable", "v2", "namespaces", "x", "others"];
        let resolved = served.resolve("b.io", &segments).expect("resolved");
        assert_eq!((resolved.version.as_str(), resolved.rest), ("stable/v2", &segments[2..]));
        assert!(served.resolve("d.io", &["v1", "things"]).is_none(), "no such group");
        let in_v1: Vec<String> = served.in_version("b.io", "v1").iter().map(|t| t.plural.clone()).collect();
        assert_eq!(in_v1, ["others", "things"]);

        assert!(served.remove("b.io", "others").is_some());
        assert!(served.remove("b.io", "others").is_none());
        assert!(served.remove("b.io", "things").is_some());
        assert!(served.resolve("b.io", &["v1", "things"]).is_none(), "the group is gone with its last type");
        assert_eq!(served.all().len(), 3);
    }
}
