//! Living behind kube-aggregator: the host cluster's client (from a
//! kubeconfig), delegated TokenReviews and SubjectAccessReviews
//! ([`delegated`]), and APIService registration ([`apiservices`]).

pub mod apiservices;
pub mod delegated;
