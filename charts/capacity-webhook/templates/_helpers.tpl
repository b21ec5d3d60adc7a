{{/* Chart name. */}}
{{- define "capacity-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (also the Service name, so it appears in the certificate SANs). */}}
{{- define "capacity-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "capacity-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "capacity-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "capacity-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "capacity-webhook.labels" -}}
helm.sh/chart: {{ include "capacity-webhook.chart" . }}
{{ include "capacity-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: admission-webhook
{{- end }}

{{- define "capacity-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "capacity-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "capacity-webhook.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret holding tls.crt / tls.key / ca.crt. */}}
{{- define "capacity-webhook.tlsSecretName" -}}
{{- if .Values.tls.secretName }}
{{- .Values.tls.secretName }}
{{- else if eq .Values.tls.mode "secret" }}
{{- fail "tls.mode=secret needs tls.secretName (an existing kubernetes.io/tls Secret in the release namespace)" }}
{{- else }}
{{- printf "%s-tls" (include "capacity-webhook.fullname" .) }}
{{- end }}
{{- end }}

{{/* cert-manager serving Certificate name. */}}
{{- define "capacity-webhook.certificateName" -}}
{{- printf "%s-serving" (include "capacity-webhook.fullname" .) }}
{{- end }}

{{/* The Service's in-cluster host name: the serving certificate's CN, the helm test's URL host. */}}
{{- define "capacity-webhook.serviceHost" -}}
{{- printf "%s.%s.svc" (include "capacity-webhook.fullname" .) .Release.Namespace }}
{{- end }}

{{/* DNS names the serving certificate must cover. */}}
{{- define "capacity-webhook.dnsNames" -}}
{{- $svc := include "capacity-webhook.fullname" . -}}
{{- $host := include "capacity-webhook.serviceHost" . -}}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) $host (printf "%s.cluster.local" $host) | toJson }}
{{- end }}

{{/* Labels of the helm test objects: deliberately not the selector labels, so the Service never routes to them. */}}
{{- define "capacity-webhook.selftestLabels" -}}
helm.sh/chart: {{ include "capacity-webhook.chart" . }}
app.kubernetes.io/part-of: {{ include "capacity-webhook.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: selftest
{{- end }}

{{/*
generate mode: the CA and serving certificate, as a YAML dict of base64 strings
{ca, crt, key}. Reuses the existing Secret (lookup) so upgrades keep the same
certificate; otherwise genCA + genSignedCert. Memoised on .Values for the
duration of one render so the Secret, the Deployment checksum and the webhook
caBundle all see the same material (lookup returns nothing under `helm template`).
*/}}
{{- define "capacity-webhook.generatedTLS" -}}
{{- if not (hasKey .Values "__capacityWebhookGeneratedTLS") }}
{{- $secretName := include "capacity-webhook.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- $tls := dict }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") }}
{{- $tls = dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") }}
{{- else }}
{{- $days := int .Values.tls.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "capacity-webhook.fullname" .)) $days }}
{{- $dns := include "capacity-webhook.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCert (include "capacity-webhook.serviceHost" .) nil $dns $days $ca }}
{{- $tls = dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set .Values "__capacityWebhookGeneratedTLS" $tls }}
{{- end }}
{{- toYaml (get .Values "__capacityWebhookGeneratedTLS") }}
{{- end }}

{{/* The caBundle for the webhook clientConfig ("" when none / injected by cert-manager). */}}
{{- define "capacity-webhook.caBundle" -}}
{{- if .Values.webhook.url }}
{{- .Values.webhook.caBundle }}
{{- else if eq .Values.tls.mode "generate" }}
{{- (include "capacity-webhook.generatedTLS" . | fromYaml).ca }}
{{- else if eq .Values.tls.mode "secret" }}
{{- required "tls.mode=secret needs tls.caBundle (base64 PEM of the CA that signed the serving certificate)" .Values.tls.caBundle }}
{{- end }}
{{- end }}

{{/* The webhook namespaceSelector. */}}
{{- define "capacity-webhook.namespaceSelector" -}}
{{- if .Values.webhook.namespaceSelector }}
{{- toYaml .Values.webhook.namespaceSelector }}
{{- else }}
{{- $excluded := concat .Values.webhook.excludedNamespaces (list .Release.Namespace) | uniq }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ toJson $excluded }}
  - key: capacity-webhook/ignore
    operator: DoesNotExist
{{- end }}
{{- end }}

{{/*
The scrape endpoint of a ServiceMonitor or PodMonitor ($ is the root context, .monitor the
serviceMonitor/podMonitor values): plain HTTP on the metrics port with metrics.httpPort, else
HTTPS on the webhook port, verified against the CA in the TLS Secret for the Service's name.
*/}}
{{- define "capacity-webhook.scrapeEndpoint" -}}
{{- $root := .root }}
{{- $monitor := .monitor }}
{{- if $root.Values.metrics.httpPort.enabled }}
port: metrics
scheme: http
{{- else }}
port: https
scheme: https
tlsConfig:
  {{- if $monitor.tlsConfig }}
  {{- toYaml $monitor.tlsConfig | nindent 2 }}
  {{- else }}
  ca:
    secret:
      name: {{ include "capacity-webhook.tlsSecretName" $root }}
      key: ca.crt
  serverName: {{ include "capacity-webhook.serviceHost" $root }}
  {{- end }}
{{- end }}
path: /metrics
interval: {{ $monitor.interval }}
scrapeTimeout: {{ $monitor.scrapeTimeout }}
{{- with $monitor.relabelings }}
relabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $monitor.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Fails the render when a monitoring object is asked for without an in-cluster Deployment. */}}
{{- define "capacity-webhook.requireDeployment" -}}
{{- if not .root.Values.deployment.enabled }}
{{- fail (printf "%s needs deployment.enabled=true: with webhook.url the server runs outside the cluster, scrape it where it runs" .what) }}
{{- end }}
{{- end }}
