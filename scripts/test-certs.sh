#!/usr/bin/env bash
# Writes the certificates of the TLS tests (crates/flowstore-testkit/tls/): a CA, a
# server certificate it signs for the name `localhost` only (so that verify-full to
# 127.0.0.1 fails where verify-ca succeeds), and a second CA that signed nothing.
# They are committed, valid for 100 years, and protect nothing: the tests start a
# throwaway PostgreSQL with them. Run it only to replace them (needs openssl).
set -euo pipefail
cd "$(dirname "$0")/../crates/flowstore-testkit/tls"
days=36500
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }
ec ca.key
openssl req -x509 -new -key ca.key -days $days -subj "/CN=flowstore test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem
ec other-ca.key
openssl req -x509 -new -key other-ca.key -days $days -subj "/CN=flowstore other test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out other-ca.pem
ec server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
  -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl ca.key other-ca.key
