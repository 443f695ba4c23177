#!/bin/sh
# One-shot: create the namespace and the search attributes of DESIGN.md 5 (idempotent).
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_RETENTION:-30d}"

attempt=1
until temporal operator cluster health --address "$ADDRESS"; do
  [ "$attempt" -ge 60 ] && { echo "temporal not healthy"; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done

temporal operator namespace describe --address "$ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1 \
  || temporal operator namespace create --address "$ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"

existing=$(temporal operator search-attribute list --address "$ADDRESS" -n "$NAMESPACE")
for spec in EscrowStatus:Keyword CotpayOrderId:Int SellerId:Keyword BuyerId:Keyword \
            EscrowAmount:Int PayoutNotBefore:Datetime; do
  name=${spec%%:*}
  type=${spec#*:}
  if echo "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$ADDRESS" -n "$NAMESPACE" \
      --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE ready"
