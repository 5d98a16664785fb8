#!/usr/bin/env bash
# Makes the certificates for the kustomize secretGenerators, with openssl:
#   <dir>/serving/{ca.crt,tls.crt,tls.key}    serving certificate of tpr-apiserver's Service, and its CA
#   <dir>/etcd/{ca.crt,server.crt,server.key,peer.crt,peer.key}
#                                             etcd's CA, and the certificates every member serves
#                                             clients (2379) and peers (2380) with
#   <dir>/etcd-client/{ca.crt,client.crt,client.key}
#                                             etcd's CA, and tpr-apiserver's client certificate for etcd
# The CAs' private keys (serving/ca.key, etcd/ca.key) stay beside and go in no Secret.
#   deploy/make-serving-cert.sh deploy
set -euo pipefail
base="${1:-$(dirname "$0")}"

# ca <dir> <CN>: a self-signed CA, <dir>/ca.{crt,key}.
ca() {
  mkdir -p "$1"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -keyout "$1/ca.key" -out "$1/ca.crt" 2>/dev/null
}

# cert <ca dir> <out path without extension> <CN> <extension line>...: a key and a
# certificate signed by that CA, <out>.{crt,key}.
cert() {
  local cadir=$1 out=$2 cn=$3
  shift 3
  mkdir -p "$(dirname "$out")"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$out.key" -out "$out.csr" 2>/dev/null
  printf "%s\n" "$@" > "$out.ext"
  openssl x509 -req -in "$out.csr" -CA "$cadir/ca.crt" -CAkey "$cadir/ca.key" -CAcreateserial -days 3650 \
    -extfile "$out.ext" -out "$out.crt" 2>/dev/null
  rm -f "$out.csr" "$out.ext" "$cadir/ca.srl"
}

# tpr-apiserver's Service, for kube-aggregator.
svc=tpr-apiserver.tpr-system.svc
ca "$base/serving" tpr-apiserver-ca
cert "$base/serving" "$base/serving/tls" "$svc" \
  "subjectAltName=DNS:tpr-apiserver,DNS:tpr-apiserver.tpr-system,DNS:$svc,DNS:$svc.cluster.local"

# etcd. One certificate (and key) for all three members, whose names it lists; the
# wildcards cover members added later. serverAuth and clientAuth both: a member
# dials its peers with its peer certificate, and etcd's gateway dials its own client
# port with the server certificate. The peer certificate is a separate one with the
# same names and its own CN, which the members require of peers
# (--peer-cert-allowed-cn=etcd-peer), so that the client certificate below, from the
# same CA, is no peer. etcd checks that a peer connects from an address its
# certificate names: the forward lookup of etcd-N.etcd.tpr-system.svc (or the reverse
# one, against the *.cluster.local wildcard) gives the pod's address.
etcd_svc=etcd.tpr-system.svc
sans="DNS:etcd,DNS:etcd.tpr-system,DNS:$etcd_svc,DNS:$etcd_svc.cluster.local"
sans+=",DNS:*.$etcd_svc,DNS:*.$etcd_svc.cluster.local"
for i in 0 1 2; do sans+=",DNS:etcd-$i.$etcd_svc,DNS:etcd-$i.$etcd_svc.cluster.local"; done
sans+=",DNS:localhost,IP:127.0.0.1"
member=("subjectAltName=$sans" "keyUsage=critical,digitalSignature,keyEncipherment"
  "extendedKeyUsage=serverAuth,clientAuth")
ca "$base/etcd" tpr-etcd-ca
cert "$base/etcd" "$base/etcd/server" etcd "${member[@]}"
cert "$base/etcd" "$base/etcd/peer" etcd-peer "${member[@]}"

# tpr-apiserver's client certificate for etcd: no names (etcd would check the
# connection's address against them), clientAuth only.
cert "$base/etcd" "$base/etcd-client/client" tpr-apiserver \
  "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth"
cp "$base/etcd/ca.crt" "$base/etcd-client/ca.crt"

echo "wrote $base/serving/{ca.crt,tls.crt,tls.key}, $base/etcd/{ca.crt,server.crt,server.key,peer.crt,peer.key}" \
  "and $base/etcd-client/{ca.crt,client.crt,client.key} (keep serving/ca.key and etcd/ca.key private, or delete them)"
