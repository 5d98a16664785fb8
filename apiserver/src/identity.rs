//! Who a request comes from and what it asks to do, as the authenticators
//! produce it and the authorizers (here and in the host cluster) judge it.
//! Shared by the connection, the filters, the authorizers and delegation:
//! it imports nothing of the server.

use std::collections::BTreeMap;

/// An authenticated user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra information (from the front proxy's extra headers).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What a connection's client certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// No (usable) client certificate.
    None,
    /// A user, from a certificate the client CA signed.
    User(std::sync::Arc<User>),
    /// The front proxy: the request headers name the user.
    FrontProxy,
    /// A certificate that was not accepted, and why (logged per request).
    Refused(std::sync::Arc<str>),
}

/// What a request wants to do.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    /// API group ("" for none).
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Namespace, if namespaced.
    pub namespace: Option<&'a str>,
    /// Object name, if one.
    pub name: Option<&'a str>,
}
