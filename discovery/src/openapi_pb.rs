//! `/openapi/v2` as protobuf: gnostic's OpenAPI v2 `Document` message
//! (`openapi.v2`, the field numbers of gnostic's `OpenAPIv2.proto`), which
//! is the only form kubectl's client-side validation and `explain` ask for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, answered
//! as [`MEDIA_TYPE`]). Built
//! from the JSON Swagger document: paths with their operations, and the
//! definitions with types, descriptions, properties, items, references and
//! vendor extensions (as YAML — JSON is YAML — as kube-apiserver encodes
//! them).

use prost::Message;
use serde_json::Value;

/// The media type of the answer, as kube-apiserver names it (kubectl asks
/// for the older `…spec.v2@v1.0+protobuf`, whose `@` Go's media-type parser
/// refuses in a Content-Type).
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(string, repeated, tag = "6")]
    consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(message, optional, tag = "1")]
    body_parameter: Option<BodyParameter>,
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct BodyParameter {
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(bool, tag = "4")]
    required: bool,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct QueryParameter {
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<SchemaItem>,
}

#[derive(Clone, PartialEq, Message)]
struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, optional, boxed, tag = "21")]
    additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
    #[prost(bool, optional, tag = "2")]
    boolean: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn extensions(v: &Value) -> Vec<NamedAny> {
    (v.as_object().into_iter().flatten())
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny { name: k.clone(), value: Some(Any { yaml: format!("{v}\n") }) })
        .collect()
}

fn schema(v: &Value) -> Schema {
    let types = match v.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    };
    let items = match v.get("items") {
        Some(Value::Array(a)) => Some(ItemsItem { schema: a.iter().map(schema).collect() }),
        Some(i @ Value::Object(_)) => Some(ItemsItem { schema: vec![schema(i)] }),
        _ => None,
    };
    let properties = v.get("properties").and_then(Value::as_object).map(|p| Properties {
        additional_properties: p.iter().map(|(k, s)| NamedSchema { name: k.clone(), value: Some(schema(s)) }).collect(),
    });
    let additional_properties = match v.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(Box::new(AdditionalPropertiesItem { schema: None, boolean: Some(*b) })),
        Some(s @ Value::Object(_)) => {
            Some(Box::new(AdditionalPropertiesItem { schema: Some(schema(s)), boolean: None }))
        }
        _ => None,
    };
    Schema {
        r#ref: text(v, "$ref"),
        format: text(v, "format"),
        description: text(v, "description"),
        required: (v.get("required").and_then(Value::as_array).into_iter().flatten())
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        additional_properties,
        r#type: (!types.is_empty()).then_some(TypeItem { value: types }),
        items,
        properties,
        vendor_extension: extensions(v),
    }
}

fn operation(op: &Value) -> Operation {
    let parameters = (op.get("parameters").and_then(Value::as_array).into_iter().flatten())
        .map(|p| {
            let parameter = if text(p, "in") == "body" {
                Parameter {
                    body_parameter: Some(BodyParameter {
                        name: text(p, "name"),
                        r#in: "body".into(),
                        required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                        schema: p.get("schema").map(schema),
                    }),
                    non_body_parameter: None,
                }
            } else {
                Parameter {
                    body_parameter: None,
                    non_body_parameter: Some(NonBodyParameter {
                        query_parameter_sub_schema: Some(QueryParameter {
                            r#in: text(p, "in"),
                            name: text(p, "name"),
                            r#type: text(p, "type"),
                            unique_items: p.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false),
                        }),
                    }),
                }
            };
            ParametersItem { parameter: Some(parameter) }
        })
        .collect();
    let responses = op.get("responses").and_then(Value::as_object).map(|r| Responses {
        response_code: r
            .iter()
            .map(|(code, resp)| NamedResponseValue {
                name: code.clone(),
                value: Some(ResponseValue {
                    response: Some(Response {
                        description: text(resp, "description"),
                        schema: resp.get("schema").map(|s| SchemaItem { schema: Some(schema(s)) }),
                    }),
                }),
            })
            .collect(),
    });
    Operation {
        description: text(op, "description"),
        operation_id: text(op, "operationId"),
        parameters,
        responses,
        vendor_extension: extensions(op),
    }
}

/// The protobuf form of a Swagger 2.0 JSON document (see [`crate::openapi::openapi_v2`]).
pub fn encode(swagger: &Value) -> Vec<u8> {
    let strings = |k: &str| -> Vec<String> {
        (swagger.get(k).and_then(Value::as_array).into_iter().flatten())
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let paths = swagger.get("paths").and_then(Value::as_object).map(|p| Paths {
        path: p
            .iter()
            .map(|(name, item)| {
                let op = |m: &str| item.get(m).map(operation);
                NamedPathItem {
                    name: name.clone(),
                    value: Some(PathItem {
                        get: op("get"),
                        put: op("put"),
                        post: op("post"),
                        delete: op("delete"),
                        patch: op("patch"),
                    }),
                }
            })
            .collect(),
    });
    let definitions = swagger.get("definitions").and_then(Value::as_object).map(|d| Definitions {
        additional_properties: d.iter().map(|(k, s)| NamedSchema { name: k.clone(), value: Some(schema(s)) }).collect(),
    });
    Document {
        swagger: text(swagger, "swagger"),
        info: swagger.get("info").map(|i| Info { title: text(i, "title"), version: text(i, "version") }),
        consumes: strings("consumes"),
        produces: strings("produces"),
        paths,
        definitions,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn definitions_and_extensions_round_trip() {
        let doc = json!({"swagger": "2.0", "info": {"title": "t", "version": "1"},
            "paths": {"/apis/prsn.io/v1/mysqldbs": {"get": {"operationId": "listMysqlDb", "x-kubernetes-action": "list",
                "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/io.prsn.v1.MysqlDbList"}}}}}},
            "definitions": {"io.prsn.v1.MysqlDb": {"type": "object", "description": "d",
                "properties": {"metadata": {"$ref": "#/definitions/m"}, "tags": {"type": "array", "items": {"type": "string"}}},
                "x-kubernetes-group-version-kind": [{"group": "prsn.io", "kind": "MysqlDb", "version": "v1"}]}}});
        let bytes = encode(&doc);
        let back = Document::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.swagger, "2.0");
        let def = &back.definitions.unwrap().additional_properties[0];
        assert_eq!(def.name, "io.prsn.v1.MysqlDb");
        let s = def.value.as_ref().unwrap();
        assert_eq!((s.description.as_str(), s.r#type.as_ref().unwrap().value[0].as_str()), ("d", "object"));
        let gvk = &s.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        assert!(gvk.value.as_ref().unwrap().yaml.contains("\"kind\":\"MysqlDb\""));
        let props = &s.properties.as_ref().unwrap().additional_properties;
        assert_eq!(props[0].value.as_ref().unwrap().r#ref, "#/definitions/m");
        assert_eq!(props[1].value.as_ref().unwrap().items.as_ref().unwrap().schema.len(), 1);
        let path = &back.paths.unwrap().path[0];
        assert_eq!(path.value.as_ref().unwrap().get.as_ref().unwrap().operation_id, "listMysqlDb");
    }
}
