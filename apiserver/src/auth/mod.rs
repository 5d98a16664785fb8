//! Who is asking and what they may do: credentials to users
//! ([`authn`]) and the authorization modes ([`authz`]); the filters in
//! [`crate::filters`] apply them to each request.

pub mod authn;
pub mod authz;
