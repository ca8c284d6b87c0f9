#!/usr/bin/env sh
# A routed answer, a routing decision without a model call, and the tenant's spend.
#   THINKROUTE_BASE=http://127.0.0.1:8000 THINKROUTE_API_KEY=sk-... sh examples/curl.sh
set -eu
BASE="${THINKROUTE_BASE:-http://127.0.0.1:8000}"
KEY="${THINKROUTE_API_KEY:-sk-thinkroute-local-dev}"
curl -sS -i "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY" \
  -H "Content-Type: application/json" \
  -d '{"model": "auto", "messages": [{"role": "user", "content": "Prove that 2^n > n^2 for n > 4."}]}'
echo
curl -sS "$BASE/v1/route" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
  -d '{"model": "auto:cheap", "messages": [{"role": "user", "content": "What is a monad?"}]}'
echo
curl -sS "$BASE/v1/usage" -H "Authorization: Bearer $KEY"
echo
