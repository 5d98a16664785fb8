#!/usr/bin/env bash
# Makes the serving certificate of tpr-apiserver's Service (and its CA) for the
# kustomize secretGenerator: writes <dir>/serving/{ca.crt,tls.crt,tls.key}.
#   deploy/make-serving-cert.sh deploy
set -euo pipefail
dir="${1:-$(dirname "$0")}/serving"
mkdir -p "$dir"
cd "$dir"
svc=tpr-apiserver.tpr-system.svc
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=tpr-apiserver-ca" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$svc" -keyout tls.key -out tls.csr 2>/dev/null
printf "subjectAltName=DNS:tpr-apiserver,DNS:tpr-apiserver.tpr-system,DNS:%s,DNS:%s.cluster.local\n" "$svc" "$svc" > san.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out tls.crt 2>/dev/null
rm -f tls.csr san.ext ca.srl
echo "wrote $dir/{ca.crt,tls.crt,tls.key} (keep ca.key private, or delete it)"
