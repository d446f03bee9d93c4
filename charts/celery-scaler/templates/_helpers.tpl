{{- define "celery-scaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "celery-scaler.fullname" -}}
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

{{- define "celery-scaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "celery-scaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "celery-scaler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "celery-scaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "celery-scaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "celery-scaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election follows the replica count: more than one replica share the pools. */}}
{{- define "celery-scaler.leaderElection" -}}
{{- gt (int .Values.replicaCount) 1 }}
{{- end }}

{{/* The configuration file: the Controller document, then one WorkerPool per pool. */}}
{{- define "celery-scaler.config" -}}
{{- $spec := deepCopy .Values.controller }}
{{- $_ := set $spec "prometheus" (merge (dict "enabled" true) (deepCopy (default (dict) $spec.prometheus))) }}
{{- $election := deepCopy (default (dict) $spec.leaderElection) }}
{{- $_ := set $election "enabled" (eq (include "celery-scaler.leaderElection" .) "true") }}
{{- $_ := set $spec "leaderElection" $election }}
{{- with .Values.broker.url }}
{{- $_ := set $spec "broker" . }}
{{- end -}}
apiVersion: celery-scaler/v1
kind: Controller
spec:
  {{- toYaml $spec | nindent 2 }}
{{- range $name, $pool := .Values.pools }}
---
apiVersion: celery-scaler/v1
kind: WorkerPool
metadata:
  name: {{ $name }}
spec:
  {{- toYaml $pool | nindent 2 }}
{{- end }}
{{- end }}

{{/* The image: repository@digest when a digest is given (immutable; the tag is then left
out), else repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "celery-scaler.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "celery-scaler.port" -}}
{{- (default (dict) .Values.controller.prometheus).port | default 9808 }}
{{- end }}
