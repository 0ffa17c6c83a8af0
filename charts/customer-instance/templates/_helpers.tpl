{{/*
Chart name, overridable with .Values.nameOverride.
*/}}
{{- define "customer-instance.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-customer-instance (the prefix of every resource,
e.g. c1a2b3c4d-customer-instance-api). Truncated to leave room for the longest suffix
("-postgres-init", 14 characters) within the 63-character DNS label limit.
*/}}
{{- define "customer-instance.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 49 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 49 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 49 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "customer-instance.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every resource.
*/}}
{{- define "customer-instance.labels" -}}
helm.sh/chart: {{ include "customer-instance.chart" . }}
{{ include "customer-instance.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: iotistic
iotistic.ca/customer-id: {{ include "customer-instance.customerIdLabel" . | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "customer-instance.selectorLabels" -}}
app.kubernetes.io/name: {{ include "customer-instance.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component. Call with (dict "ctx" $ "component" "api").
Adds app.kubernetes.io/component=<component> and app=<component>; the runbooks
select pods with both (-l app.kubernetes.io/component=api, -l app=postgres).
*/}}
{{- define "customer-instance.componentLabels" -}}
{{ include "customer-instance.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
app: {{ .component }}
{{- end }}

{{/*
Selector of one component (immutable once deployed: never add labels here).
*/}}
{{- define "customer-instance.componentSelectorLabels" -}}
{{ include "customer-instance.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The customer id, required.
*/}}
{{- define "customer-instance.customerId" -}}
{{- required "customer.id is required (the billing service's customer id)" .Values.customer.id }}
{{- end }}

{{/*
Label-safe form of the customer id (labels allow [A-Za-z0-9_.-], 63 chars).
*/}}
{{- define "customer-instance.customerIdLabel" -}}
{{- regexReplaceAll "[^A-Za-z0-9_.-]" (include "customer-instance.customerId" .) "-" | trunc 63 | trimAll "-_." }}
{{- end }}

{{/*
Short customer id used in the namespace (customer-<short>) and the hostname:
customer.namespaceShort when set, else the first 8 lowercase alphanumeric
characters of customer.id after an optional "cust_" prefix
(cust_abc123def456 -> abc123de).
*/}}
{{- define "customer-instance.namespaceShort" -}}
{{- $short := .Values.customer.namespaceShort }}
{{- if not $short }}
{{- $id := include "customer-instance.customerId" . | trimPrefix "cust_" | lower }}
{{- $short = regexReplaceAll "[^a-z0-9]" $id "" | trunc 8 }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$" $short) }}
{{- fail (printf "customer.namespaceShort %q must be lowercase alphanumeric (DNS label)" $short) }}
{{- end }}
{{- $short }}
{{- end }}

{{/*
Public host name: ingress.host, else customer-<namespaceShort>.<baseDomain>.
*/}}
{{- define "customer-instance.host" -}}
{{- if .Values.ingress.host }}
{{- .Values.ingress.host }}
{{- else }}
{{- printf "customer-%s.%s" (include "customer-instance.namespaceShort" .) (required "baseDomain is required when ingress.host is not set" .Values.baseDomain) }}
{{- end }}
{{- end }}

{{/*
Image reference. Call with (dict "image" .Values.api.image "ctx" $).
An empty tag falls back to the chart's appVersion.
*/}}
{{- define "customer-instance.image" -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion | toString }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
A password: the explicit value when set, else derived from secrets.seed so that
`helm template` / `helm upgrade` stay deterministic without `lookup`.
Call with (list $ .Values.postgres.password "postgres").
*/}}
{{- define "customer-instance.password" -}}
{{- $ctx := index . 0 }}
{{- $explicit := index . 1 | toString }}
{{- $purpose := index . 2 }}
{{- $password := $explicit }}
{{- if not $explicit }}
{{- $seed := required "secrets.seed is required unless every password (postgres.password, redis.password, mqtt.apiUser.password) is set" $ctx.Values.secrets.seed }}
{{- $password = printf "%s:%s:%s" $seed (include "customer-instance.customerId" $ctx) $purpose | sha256sum | trunc 40 }}
{{- end }}
{{- if not (regexMatch "^[!-~]{12,}$" $password) }}
{{- fail (printf "the %s password must be at least 12 printable ASCII characters without spaces" $purpose) }}
{{- end }}
{{- $password }}
{{- end }}

{{- define "customer-instance.secretName" -}}
{{- printf "%s-secrets" (include "customer-instance.fullname" .) }}
{{- end }}

{{- define "customer-instance.postgres.host" -}}
{{- printf "%s-postgres" (include "customer-instance.fullname" .) }}
{{- end }}

{{- define "customer-instance.redis.host" -}}
{{- printf "%s-redis" (include "customer-instance.fullname" .) }}
{{- end }}

{{- define "customer-instance.mosquitto.host" -}}
{{- printf "%s-mosquitto" (include "customer-instance.fullname" .) }}
{{- end }}

{{/*
Pod-level scheduling and pull secrets shared by every workload.
*/}}
{{- define "customer-instance.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}
