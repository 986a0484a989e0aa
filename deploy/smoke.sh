#!/bin/sh
# The deploy job's last step (.github/workflows/forge.yml), and the test's
# (crates/nindub/tests/forge.rs): trade the job's OIDC token for a
# short-lived credential, then call the project's own server with it.
# No secret is stored anywhere: the runner hands the job
# ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN.
set -eu
: "${NINDUB_EXCHANGE_URL:?the exchange's URL}" "${NINDUB_URL:?the server's URL}"
NINDUB=${NINDUB:-nindub}
credential=$("$NINDUB" forge login --exchange "$NINDUB_EXCHANGE_URL")
# The header goes through stdin, not the command line (which `ps` shows).
printf 'Authorization: Bearer %s\n' "$credential" |
  curl -fsS -H @- -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"Name one colour."}],"max_tokens":8,"temperature":0}' \
    "${NINDUB_URL%/}/v1/chat/completions"
echo
