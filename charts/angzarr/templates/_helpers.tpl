{{/*
The release namespace, checked: it becomes part of Service host names in
flags, the topology and the EnvoyFilter.
*/}}
{{- define "angzarr.namespace" -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .Release.Namespace) -}}
{{- fail (printf "release namespace %q is not a DNS label" .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/* An image reference from {repository, tag, digest} (schema-checked). */}}
{{- define "angzarr.imageRef" -}}
{{- .repository }}:{{ .tag }}{{ with .digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* FQDN of a Service of this release: angzarr.host (dict "name" N "ctx" $). */}}
{{- define "angzarr.host" -}}
{{- .name }}.{{ include "angzarr.namespace" .ctx }}.svc.cluster.local
{{- end -}}

{{/* The event service's store URL. */}}
{{- define "angzarr.storeURL" -}}
{{- $s := .Values.store -}}
{{- $q := "" -}}
{{- if gt (int $s.minReplicas) 0 -}}
{{- $q = printf "?min-replicas=%d&replica-timeout=%s" (int $s.minReplicas) $s.replicaTimeout -}}
{{- end -}}
{{- if eq $s.type "redis" -}}
{{- if $s.redis.bundled -}}
redis://{{ include "angzarr.host" (dict "name" "redis" "ctx" .) }}:6379/{{ $s.redis.db }}
{{- else -}}
redis://{{ include "angzarr.storeCredentials" . }}{{ $s.redis.address }}/{{ $s.redis.db }}{{ $q }}
{{- end -}}
{{- else if eq $s.type "redisCluster" -}}
redis+cluster://{{ include "angzarr.storeCredentials" . }}{{ join "," $s.redisCluster.addresses }}{{ $q }}
{{- else -}}
sqlite:/var/lib/angzarr/events.db
{{- end -}}
{{- end -}}

{{/* Pod security context for the angzarr images (uid 65532, non-root). */}}
{{- define "angzarr.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Container security context: nothing to escalate, nothing to write. */}}
{{- define "angzarr.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* OpenTelemetry environment of the angzarr containers (list items). */}}
{{- define "angzarr.telemetryEnv" -}}
{{- with .Values.telemetry }}{{ if .otlpEndpoint -}}
# Traces over OTLP/gRPC (values: telemetry), e.g. to the Collector of
# istio/observability.
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ .otlpEndpoint | quote }}}
- {name: OTEL_TRACES_SAMPLER, value: {{ .sampler }}}
- {name: OTEL_TRACES_SAMPLER_ARG, value: {{ .samplerArg | quote }}}
{{- end }}{{ end }}
{{- end -}}

{{/*
The Redis credentials from store.auth.existingSecret (list items): the
store URL names them as $(VAR), which the kubelet expands, so they are not
in the pod spec.
*/}}
{{- define "angzarr.storeAuthEnv" -}}
{{- with .Values.store.auth }}{{ if .existingSecret -}}
# Redis credentials, expanded into --store by the kubelet.
{{- if .usernameKey }}
- name: ANGZARR_STORE_USERNAME
  valueFrom: {secretKeyRef: {name: {{ .existingSecret }}, key: {{ .usernameKey | quote }}}}
{{- end }}
- name: ANGZARR_STORE_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .existingSecret }}, key: {{ .passwordKey | quote }}}}
{{- end }}{{ end }}
{{- end -}}

{{/* USER:PASS@ of the store URL, as $(VAR) references, or nothing. */}}
{{- define "angzarr.storeCredentials" -}}
{{- with .Values.store.auth }}{{ if .existingSecret -}}
{{- if .usernameKey }}$(ANGZARR_STORE_USERNAME){{ end }}:$(ANGZARR_STORE_PASSWORD)@
{{- end }}{{ end }}
{{- end -}}

{{/* The env: block of an angzarr container (telemetry, and with store credentials). */}}
{{- define "angzarr.env" -}}
{{- $items := list (include "angzarr.telemetryEnv" .ctx) }}
{{- if .store }}{{ $items = append $items (include "angzarr.storeAuthEnv" .ctx) }}{{ end }}
{{- $items = compact $items }}
{{- if $items -}}
env:
{{- range $items }}
{{ . | indent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "angzarr.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The EnvoyFilter patch that adds the cluster through which the filter calls
its workload's logic on port (the argument) when a write conflict makes it
retry a command (the control plane's IstioLogicCluster). Istio's
inbound|PORT|| cannot serve: it is ORIGINAL_DST, and a callout has no
downstream connection to take the address from ("no healthy upstream").
STATIC to the loopback address: the logic must listen there too (0.0.0.0
does). Istio adds clusters with the sidecar's outbound ones (context
SIDECAR_OUTBOUND); no route refers to it.
*/}}
{{- define "angzarr.logicClusterPatch" -}}
# The loopback cluster of the logic on port {{ . }}, for the filter's
# write-conflict retries (Istio's inbound|{{ . }}|| is ORIGINAL_DST: no
# host for a callout).
- applyTo: CLUSTER
  match:
    context: SIDECAR_OUTBOUND
  patch:
    operation: ADD
    value:
      name: angzarr-logic-loopback-{{ . }}
      type: STATIC
      connect_timeout: 5s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {}
      load_assignment:
        cluster_name: angzarr-logic-loopback-{{ . }}
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address:
                      address: 127.0.0.1
                      port_value: {{ . }}
{{- end }}

{{/*
The EnvoyFilter patch that raises the inbound listener's buffer limit to
the argument (envoyFilter.bufferLimitBytes): Envoy buffers a body the
filter stopped only up to per_connection_buffer_limit_bytes (1 MiB by
default, which Istio keeps for sidecars); past it a command gets 413 and
a logic answer whose headers went on is reset, before the filter could
answer RESOURCE_EXHAUSTED at its own limit (max_body_bytes, 4 MiB).
*/}}
{{- define "angzarr.bufferLimitPatch" -}}
# Room for the bodies the filter buffers (max_body_bytes + 64 KiB): Envoy
# cuts a stopped body at the listener's buffer limit (1 MiB by default).
- applyTo: LISTENER
  match:
    context: SIDECAR_INBOUND
  patch:
    operation: MERGE
    value:
      per_connection_buffer_limit_bytes: {{ . }}
{{- end }}
