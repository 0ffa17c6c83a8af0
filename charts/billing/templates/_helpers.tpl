{{- define "billing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, e.g. "billing" for release billing, else <release>-billing.
Truncated to leave room for the longest suffix ("-migrate", "-license-keys").
*/}}
{{- define "billing.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "billing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "billing.labels" -}}
helm.sh/chart: {{ include "billing.chart" . }}
{{ include "billing.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: iotistic-billing
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "billing.selectorLabels" -}}
app.kubernetes.io/name: {{ include "billing.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component: (dict "ctx" $ "component" "web").
*/}}
{{- define "billing.componentLabels" -}}
{{ include "billing.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "billing.componentSelectorLabels" -}}
{{ include "billing.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "billing.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "billing.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "billing.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "billing.configMapName" -}}
{{- printf "%s-config" (include "billing.fullname" .) }}
{{- end }}

{{- define "billing.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-env" (include "billing.fullname" .)) }}
{{- end }}

{{- define "billing.licenseKeysSecretName" -}}
{{- .Values.licenseKeys.existingSecret | default (printf "%s-license-keys" (include "billing.fullname" .)) }}
{{- end }}

{{- define "billing.webServiceName" -}}
{{- printf "%s-web" (include "billing.fullname" .) }}
{{- end }}

{{/*
ALLOWED_HOSTS: config.allowedHosts, the ingress host and the web Service's in-cluster
names (the probes send Host: <fullname>-web).
*/}}
{{- define "billing.allowedHosts" -}}
{{- $svc := include "billing.webServiceName" . }}
{{- $hosts := concat (.Values.config.allowedHosts | default list) (list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace)) }}
{{- if and .Values.ingress.enabled .Values.ingress.host }}
{{- $hosts = prepend $hosts .Values.ingress.host }}
{{- end }}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/*
Pod template pieces shared by every workload and the migration job.
*/}}
{{- define "billing.podCommon" -}}
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
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Environment of every container running the Django app: the ConfigMap and Secret as
env, and the license key paths.
*/}}
{{- define "billing.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "billing.configMapName" . }}
  - secretRef:
      name: {{ include "billing.secretName" . }}
{{- end }}

{{- define "billing.env" -}}
env:
  - name: LICENSE_PRIVATE_KEY_PATH
    value: {{ printf "%s/private-key.pem" .Values.licenseKeys.mountPath | quote }}
  - name: LICENSE_PUBLIC_KEY_PATH
    value: {{ printf "%s/public-key.pem" .Values.licenseKeys.mountPath | quote }}
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
{{- with .Values.extraEnv }}
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "billing.volumeMounts" -}}
volumeMounts:
  - name: license-keys
    mountPath: {{ .Values.licenseKeys.mountPath }}
    readOnly: true
  - name: tmp
    mountPath: /tmp
{{- end }}

{{- define "billing.volumes" -}}
volumes:
  - name: license-keys
    secret:
      secretName: {{ include "billing.licenseKeysSecretName" . }}
      defaultMode: 0440
      items:
        - key: private-key.pem
          path: private-key.pem
        - key: public-key.pem
          path: public-key.pem
  - name: tmp
    emptyDir: {}
{{- end }}

{{/*
Checksums of the chart-managed configuration, so pods roll when it changes.
*/}}
{{- define "billing.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
checksum/license-keys: {{ include (print .Template.BasePath "/license-keys-secret.yaml") . | sha256sum }}
{{- end }}

{{/*
Annotations that make chart-created configuration a pre-install/pre-upgrade hook, so it
exists before the migration job (also a hook) runs; pre-rollback restores the rolled-back
revision's configuration. Hook resources are not removed by `helm uninstall`.
*/}}
{{- define "billing.preHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade,pre-rollback
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation
{{- end }}
