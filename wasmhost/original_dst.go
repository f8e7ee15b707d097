package wasmhost

// OriginalDst, as a cluster's address in Config.Clusters or SetClusters,
// makes the cluster an ORIGINAL_DST cluster, as Istio's inbound clusters
// (inbound|<port>||) are in its default passthrough mode: it has no
// endpoints, and its load balancer takes the upstream address from the
// downstream connection's original destination. A callout runs on the root
// context, which has no downstream connection, so the balancer finds no
// host (source/extensions/clusters/original_dst/original_dst_cluster.cc,
// OriginalDstCluster::LoadBalancer::chooseHost: "original_dst_load_balancer:
// No downstream connection or no original_dst.") and the router answers
// 503 "no healthy upstream" (Router::Filter::onRequestComplete /
// sendNoHealthyUpstreamResponse): a gRPC callout gets UNAVAILABLE, an HTTP
// callout the 503 reply. (envoyproxy/envoy#17178 shows the same for an
// http_call to inbound|80||.)
const OriginalDst = "ORIGINAL_DST"

// noHealthyUpstream is the router's reply body when a cluster has no host.
const noHealthyUpstream = "no healthy upstream"
