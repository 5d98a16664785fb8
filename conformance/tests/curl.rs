//! curl against the real binary, on both backends: health, and every
//! ThirdPartyResource example of the seed document as written.

use testkit::Server;

const SEED_TPR: &str = r#"{"metadata":{"name":"mysql-db.prsn.io","labels":{"resource":"database","object":"mysql"}},"apiVersion":"extensions/v1beta1","kind":"ThirdPartyResource","description":"A specification of database for mysql","versions":[{"name":"stable/v1"}]}"#;
const SEED_OBJECT: &str = r#"{
   "metadata": {
     "name": "my-new-mysql-db"
   },
   "apiVersion": "prsn.io/stable/v1",
   "kind": "MysqlDb",
   "engine_version": "5.6.23",
   "instance_size": "huge"
}"#;

fn start(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir", dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    (Server::start(&testkit::apiserver_binary(), &args).unwrap(), dir)
}

/// Where the seed's objects live.
const SEED_DBS: &str = "/apis/prsn.io/stable/v1/namespaces/default/mysqldbs";

/// Creates the seed's TPR with curl.
fn create_seed_tpr(server: &Server) {
    let out = server.curl(
        &["-H", "Content-Type: application/json", "-d", SEED_TPR],
        "/apis/extensions/v1beta1/thirdpartyresources",
    );
    assert_eq!(out.code, 201, "create TPR: {}", out.body);
}

/// Writes `text` to `name` in `dir`; curl's `@file` for it.
fn data_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    format!("@{}", path.display())
}

fn seed_examples(server: &Server) {
    for path in ["/healthz", "/livez", "/readyz"] {
        let out = server.curl_as(true, &[], path);
        assert_eq!(out.body, "ok", "curl {path}: {}", out.stderr);
    }
    // The TPR, with curl.
    create_seed_tpr(server);
    // The seed's object, posted at once to the new type.
    let out = server.curl(&["-d", SEED_OBJECT], SEED_DBS);
    assert_eq!(out.code, 201, "create object: {} {}", out.body, out.stderr);
    let created: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(created["kind"], "MysqlDb");
    assert_eq!(created["engine_version"], "5.6.23");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(
        out.body.find("\"engine_version\"").unwrap() < out.body.find("\"instance_size\"").unwrap(),
        "field order kept"
    );
    // Listed across namespaces, as in the seed.
    let out = server.curl(&[], "/apis/prsn.io/stable/v1/mysqldbs");
    assert_eq!(out.code, 200);
    let list: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "my-new-mysql-db");
    assert_eq!(list["items"][0]["apiVersion"], "prsn.io/stable/v1");
    assert_eq!(list["items"][0]["kind"], "MysqlDb");
    // The root path list shows the new group and version.
    let out = server.curl(&[], "/");
    let paths: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    let paths: Vec<&str> = paths["paths"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    for want in [
        "/apis",
        "/apis/extensions",
        "/apis/extensions/v1beta1",
        "/apis/prsn.io",
        "/apis/prsn.io/stable/v1",
        "/healthz",
        "/version",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    // stable/v1 answers with a Warning that says why it is path-only...
    let out = server.curl(&["-D", "/dev/stdout", "-o", "/dev/null"], "/apis/prsn.io/stable/v1/mysqldbs");
    let warning = out.body.lines().find(|l| l.to_ascii_lowercase().starts_with("warning:")).unwrap_or_default();
    assert!(warning.contains("299") && warning.contains("not a DNS label"), "headers: {}", out.body);
    // ...and is never listed in discovery.
    let out = server.curl(&[], "/apis");
    assert!(!out.body.contains("stable/v1"), "{}", out.body);
    let out = server.curl(&[], "/apis/prsn.io");
    assert_eq!(out.code, 200, "the group listed in / answers: {}", out.body);
    assert!(!out.body.contains("stable/v1"), "{}", out.body);
}

#[test]
fn seed_examples_work_with_curl_on_the_embedded_default() {
    let (server, _dir) = start(&[]);
    seed_examples(&server);
    assert!(server.terminate().unwrap().success());
}

#[test]
fn seed_examples_work_with_curl_on_etcd() {
    let etcd = testkit::Etcd::start().unwrap();
    let (server, _dir) = start(&["--etcd-servers", &etcd.endpoint()]);
    seed_examples(&server);
    assert!(server.terminate().unwrap().success());
}

/// An error answered while curl is still uploading reaches it whole, whatever
/// answers it (the handlers' 413 and 415 for POST, PUT, PATCH and DELETE, the
/// router's 404, the filters' 401, 403 and 406): the server reads the rest of
/// the body first. A client told "no" mid-upload stops sending, and curl then
/// drops the answer's body with the stream (seen as "HTTP/2 stream 1 was not
/// closed cleanly").
#[test]
fn errors_answered_mid_upload_reach_curl_whole() {
    let (server, dir) = start(&[]);
    create_seed_tpr(&server);
    let dbs = SEED_DBS;
    let body = |name: &str, bytes: usize| {
        let json = format!("{{\"metadata\":{{\"name\":\"{name}\"}},\"blob\":\"{}\"}}", "x".repeat(bytes));
        data_file(&dir, &format!("{name}.json"), &json)
    };
    let one = format!("{dbs}/my-new-mysql-db");
    // Over the 3 MiB bound, and under it (read only when the request gets that far).
    let (big, medium) = (body("big", 4 << 20), body("medium", 2 << 20));
    /// A request refused before its body is read, and the answer curl must see.
    struct Case<'a> {
        anonymous: bool,
        method: &'a str,
        path: &'a str,
        header: Option<&'a str>,
        data: &'a str,
        codes: &'a [u16],
        reason: &'a str,
    }
    let refused = |method, path, header, data, code: &'static [u16], reason| Case {
        anonymous: false,
        method,
        path,
        header,
        data,
        codes: code,
        reason,
    };
    let cases = [
        refused("POST", dbs, None, &big, &[413], "RequestEntityTooLarge"),
        refused("DELETE", &one, None, &big, &[413], "RequestEntityTooLarge"),
        refused("POST", "/apis/prsn.io/stable/v1/namespaces/default/nosuchthings", None, &medium, &[404], "NotFound"),
        refused("POST", dbs, Some("Content-Type: text/plain"), &medium, &[415], "UnsupportedMediaType"),
        refused("PUT", &one, Some("Content-Type: text/plain"), &medium, &[415], "UnsupportedMediaType"),
        refused("PATCH", &one, Some("Content-Type: text/plain"), &medium, &[415], "UnsupportedMediaType"),
        refused("POST", dbs, Some("Accept: application/vnd.kubernetes.protobuf"), &medium, &[406], "NotAcceptable"),
        Case {
            anonymous: true,
            method: "POST",
            path: dbs,
            header: None,
            data: &medium,
            codes: &[401, 403],
            reason: "",
        },
    ];
    for Case { anonymous, method, path, header, data, codes, reason } in cases {
        for _ in 0..3 {
            let mut args = vec!["-X", method, "-d", data];
            if let Some(h) = header {
                args.extend(["-H", h]);
            }
            let out = server.curl_as(anonymous, &args, path);
            let status: serde_json::Value = serde_json::from_str(&out.body).unwrap_or_else(|e| {
                panic!("{method} {path} {header:?}: not JSON ({e}): {} {} {}", out.code, out.body, out.stderr)
            });
            assert!(codes.contains(&out.code), "{method} {path} {header:?}: {} {}", out.code, out.body);
            assert_eq!(status["code"], out.code, "{}", out.body);
            if !reason.is_empty() {
                assert_eq!(status["reason"], reason, "{}", out.body);
            }
            assert_eq!(out.stderr, "", "{method} {path} {header:?}: curl reports no error");
        }
    }
    // Nothing was created by any of them.
    let out = server.curl(&[], dbs);
    let list: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(list["items"], serde_json::json!([]), "{}", out.body);
}

/// YAML bodies, as kube-apiserver reads them (`curl --data-binary @obj.yaml -H
/// 'Content-Type: application/yaml'`): a create and an update answer JSON,
/// and duplicate keys follow `fieldValidation` like JSON's.
#[test]
fn yaml_bodies_create_and_update() {
    let (server, dir) = start(&[]);
    create_seed_tpr(&server);
    let dbs = SEED_DBS;
    let yaml = |name: &str, text: &str| data_file(&dir, name, text);
    let send = |method: &str, path: &str, body: &str| {
        let out = server.curl(&["-X", method, "-H", "Content-Type: application/yaml", "--data-binary", body], path);
        let v: serde_json::Value = serde_json::from_str(&out.body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {} {}", out.body, out.stderr));
        (out.code, v)
    };
    let create = yaml(
        "create.yaml",
        "apiVersion: prsn.io/stable/v1\nkind: MysqlDb\nmetadata:\n  name: from-yaml\n  labels:\n    tier: db\nengine_version: 5.6.23\nsizes: [small, huge]\n",
    );
    let (code, created) = send("POST", dbs, &create);
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["engine_version"], "5.6.23");
    assert_eq!(created["sizes"], serde_json::json!(["small", "huge"]));
    assert_eq!(created["metadata"]["labels"]["tier"], "db");
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    let update = yaml(
        "update.yaml",
        &format!("apiVersion: prsn.io/stable/v1\nkind: MysqlDb\nmetadata:\n  name: from-yaml\n  resourceVersion: \"{rv}\"\nengine_version: \"5.7\"\n"),
    );
    let (code, updated) = send("PUT", &format!("{dbs}/from-yaml"), &update);
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["engine_version"], "5.7");
    let (code, stale) = send("PUT", &format!("{dbs}/from-yaml"), &update);
    assert_eq!((code, stale["reason"].as_str()), (409, Some("Conflict")), "{stale}");
    let twice = yaml("twice.yaml", "metadata:\n  name: twice\nsize: a\nsize: b\n");
    let (code, refused) = send("POST", &format!("{dbs}?fieldValidation=Strict"), &twice);
    assert_eq!(code, 400, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("duplicate field"), "{refused}");
    let (code, bad) = send("POST", dbs, &yaml("bad.yaml", "metadata: [\n"));
    assert_eq!((code, bad["reason"].as_str()), (400, Some("BadRequest")), "{bad}");
}

/// JSON answers are indented for people, as kube-apiserver indents them:
/// for curl (and Wget, browsers) unless `pretty=false`, and for anyone with
/// `pretty=true`; a watch stays one event per line.
#[test]
fn json_is_indented_for_people() {
    let (server, _dir) = start(&[]);
    create_seed_tpr(&server);
    let dbs = SEED_DBS;
    let out = server.curl(&["-d", SEED_OBJECT], dbs);
    assert_eq!(out.code, 201, "{}", out.body);
    let indented = |body: &str| body.starts_with("{\n  \"") && body.contains("\": ");
    let as_json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    for path in [format!("{dbs}/my-new-mysql-db"), dbs.to_string(), format!("{dbs}/missing"), "/apis".to_string()] {
        let curl = server.curl(&[], &path);
        assert!(indented(&curl.body), "curl {path}: {}", curl.body);
        let compact = server.curl(&[], &format!("{path}?pretty=false"));
        assert!(!compact.body.contains('\n'), "curl {path}?pretty=false: {}", compact.body);
        let program = server.curl(&["-A", "kubectl/v1.32.0"], &path);
        assert!(!program.body.contains('\n'), "kubectl's agent {path}: {}", program.body);
        let asked = server.curl(&["-A", "kubectl/v1.32.0"], &format!("{path}?pretty=true"));
        assert!(indented(&asked.body), "pretty=true {path}: {}", asked.body);
        assert_eq!(as_json(&curl.body), as_json(&compact.body), "{path}: the same answer");
    }
    let watch = server.curl(&[], &format!("{dbs}?watch=true&timeoutSeconds=1"));
    let lines: Vec<&str> = watch.body.lines().collect();
    assert_eq!(lines.len(), 1, "{}", watch.body);
    assert_eq!(as_json(lines[0])["type"], "ADDED");
}
