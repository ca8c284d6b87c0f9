{{/* Chart name, overridable. */}}
{{- define "thinkroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, unless the release name already holds the chart name. */}}
{{- define "thinkroute.fullname" -}}
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

{{- define "thinkroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "thinkroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "thinkroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "thinkroute.labels" -}}
helm.sh/chart: {{ include "thinkroute.chart" . }}
{{ include "thinkroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: proxy
{{- end }}

{{- define "thinkroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "thinkroute.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret whose keys become the container's environment. */}}
{{- define "thinkroute.secretName" -}}
{{- default (include "thinkroute.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "thinkroute.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/* The config file: values.config plus the shared Redis. */}}
{{- define "thinkroute.config" -}}
{{- $config := deepCopy (default (dict) .Values.config) }}
{{- $redis := dict "url" "${REDIS_URL}" "cluster" (.Values.redis.cluster | default false) }}
{{- $_ := set $config "redis" (merge $redis (default (dict) $config.redis)) }}
{{- toYaml $config }}
{{- end }}

{{/* Refuse settings that would deploy something broken. */}}
{{- define "thinkroute.validate" -}}
{{- if and (not .Values.redis.url) (not .Values.redis.existingSecret) }}
{{- fail "redis: set redis.url or redis.existingSecret. Replicas share their budgets and cache through one Redis; without it each pod would start its own." }}
{{- end }}
{{- if not .Values.config }}
{{- fail "config: the proxy needs a config (model_list, tiers, tenants)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling: minReplicas is greater than maxReplicas" }}
{{- end }}
{{- end }}
