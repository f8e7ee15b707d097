#!/usr/bin/env bash
# A walk through the example shop against a running `angzarr dev` (start it
# with `make dev` in another terminal): a customer, two products and their
# stock, an order paid and confirmed; then the saga effects: loyalty points
# earned by the customer and the shipment created for the order. Every step
# says what it does in one line and shows the events it stored.
#
# Environment: ANGZARR (the CLI, default build/angzarr), DATA_DIR (the mesh's
# data directory, default .angzarr), DEADLINE (seconds to wait for each saga
# effect, default 30). Each run uses fresh names, so it can be repeated.
set -euo pipefail
cd "$(dirname "$0")/.."

ANGZARR=${ANGZARR:-build/angzarr}
DATA_DIR=${DATA_DIR:-.angzarr}
DEADLINE=${DEADLINE:-30}
run=${DEMO_RUN:-$(date +%s)}
flags=(--data-dir "$DATA_DIR")

if [ ! -f "$DATA_DIR/endpoints.json" ]; then
  echo "No local mesh found ($DATA_DIR/endpoints.json is missing): start it first with 'make dev' in another terminal." >&2
  exit 1
fi

bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[ -t 1 ] || { bold='' dim='' off=''; }

# step "what it does" DOMAIN ROOT TYPE JSON SEQUENCE [send flags...]: sends the
# command with the aggregate's expected next sequence, then shows the events
# stored from that sequence on.
step() {
  local what=$1 domain=$2 root=$3 type=$4 json=$5 seq=$6
  shift 6
  echo
  echo "${bold}▶ $what${off}"
  echo "${dim}  angzarr send $domain $root $type '$json' --expect-sequence $seq $*${off}"
  "$ANGZARR" send "$domain" "$root" "$type" "$json" --expect-sequence "$seq" "${flags[@]}" "$@" >/dev/null
  "$ANGZARR" events "$domain" "$root" --from "$seq" "${flags[@]}" | sed 's/^/  /'
}

# await "what" PATTERN ARGS...: polls `angzarr events ARGS` until its JSON
# output matches PATTERN, for at most DEADLINE seconds.
await() {
  local what=$1 pattern=$2
  shift 2
  echo
  echo "${bold}▶ $what${off}"
  local end=$((SECONDS + DEADLINE))
  until "$ANGZARR" events "$@" -o json "${flags[@]}" | grep -q "$pattern"; do
    if [ "$SECONDS" -ge "$end" ]; then
      echo "  ✗ not seen within ${DEADLINE}s: is the fan-out running? (see the angzarr dev log, component=eventsvc)" >&2
      exit 1
    fi
    sleep 0.2 # a poll interval, not a wait for something to be done
  done
  "$ANGZARR" events "$@" "${flags[@]}" | grep -E "TIME|$pattern" | sed 's/^/  /'
}

customer=alice-$run order=order-$run mug=mug-$run poster=poster-$run cid=demo-$run
echo "${bold}Angzarr Mesh demo${off} (run $run): every command goes through its domain's proxy, where the Wasm filter"
echo "loads the history from the event service, calls the business logic and stores the new events."

step "Create the customer $customer (served by the Python customer when python3-grpcio is installed)" \
  customer "$customer" examples.CreateCustomer '{"name":"Alice","email":"alice@example.com"}' 0
step "Create the product $mug at 12.50" \
  product "$mug" examples.CreateProduct "{\"sku\":\"$mug\",\"name\":\"Mug\",\"priceCents\":1250}" 0
step "Create the product $poster at 25.00" \
  product "$poster" examples.CreateProduct "{\"sku\":\"$poster\",\"name\":\"Poster\",\"priceCents\":2500}" 0
step "Put 100 mugs in stock (the inventory of a product lives at the UUIDv5 of its id)" \
  inventory "$mug" examples.InitializeStock "{\"productId\":\"$mug\",\"quantity\":100,\"lowStockThreshold\":10}" 0
step "Put 20 posters in stock" \
  inventory "$poster" examples.InitializeStock "{\"productId\":\"$poster\",\"quantity\":20,\"lowStockThreshold\":5}" 0
step "Order 2 mugs and 1 poster: the subtotal is 2×1250 + 2500 = 5000 (correlation id $cid)" \
  order "$order" examples.CreateOrder "{\"customerId\":\"$customer\",\"items\":[{\"productId\":\"$mug\",\"name\":\"Mug\",\"quantity\":2,\"unitPriceCents\":1250},{\"productId\":\"$poster\",\"name\":\"Poster\",\"quantity\":1,\"unitPriceCents\":2500}]}" 0 \
  --correlation-id "$cid"
# An order's id is its root (the UUIDv5 of "$order"), as the sagas use it.
order_id=$("$ANGZARR" events order "$order" -o json "${flags[@]}" | sed -n 's/.*"root":"\([^"]*\)".*/\1/p' | head -n1)
step "Reserve the 2 mugs for order $order_id" \
  inventory "$mug" examples.ReserveStock "{\"quantity\":2,\"orderId\":\"$order_id\"}" 1 --correlation-id "$cid"
step "Pay 5000 by card (the amount must equal the subtotal)" \
  order "$order" examples.SubmitPayment '{"paymentMethod":"card","amountCents":5000}' 1 --correlation-id "$cid"
step "Confirm the payment: the order completes and earns 1 loyalty point per whole dollar (50)" \
  order "$order" examples.ConfirmPayment "{\"paymentReference\":\"pay-$run\"}" 2 --correlation-id "$cid"

await "The loyalty-earn saga credited the customer with the 50 points (AddLoyaltyPoints through the customer's own proxy)" \
  LoyaltyPointsAdded customer "$customer"
await "The fulfillment saga created the order's shipment (the shipment's root is the UUIDv5 of the order's root)" \
  ShipmentCreated --correlation-id "$cid"

echo
echo "${bold}▶ The whole workflow, across domains, by its correlation id${off}"
echo "${dim}  angzarr events --correlation-id $cid${off}"
"$ANGZARR" events --correlation-id "$cid" "${flags[@]}" | sed 's/^/  /'
echo
echo "Done. Follow live with: $ANGZARR events order --follow"
