{{/*
The prefix of every namespaced and cluster-scoped name the operator owns.
Released as "instance-operator" it is "instance-operator", as config/'s
namePrefix; the API's ClusterRoles (compute.*) keep their product names.
At most 28 characters, so that the longest name made from it, the metrics
Service's, stays within a DNS label's 63.
*/}}
{{- define "instance-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 28 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 28 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "instance-operator.serviceAccountName" -}}
{{ include "instance-operator.fullname" . }}-controller-manager
{{- end -}}

{{/* Selector labels: the same as config/'s, so both select one Deployment's pods. */}}
{{- define "instance-operator.selectorLabels" -}}
app.kubernetes.io/name: instance-operator
control-plane: controller-manager
{{- end -}}

{{/* The REST API's process: its own Deployment and service account. */}}
{{- define "instance-operator.apiServiceAccountName" -}}
{{ include "instance-operator.fullname" . }}-api
{{- end -}}

{{- define "instance-operator.apiSelectorLabels" -}}
app.kubernetes.io/name: instance-operator
control-plane: api
{{- end -}}

{{- define "instance-operator.labels" -}}
app.kubernetes.io/name: instance-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "instance-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
A file of config/ that make manifests copies under files/, as one object,
with the chart's labels laid over its own.
*/}}
{{- define "instance-operator.configObject" -}}
{{- $obj := .root.Files.Get .path | fromYaml -}}
{{- $labels := merge (dict) (include "instance-operator.labels" .root | fromYaml) ($obj.metadata.labels | default dict) -}}
{{- $_ := set $obj.metadata "labels" $labels -}}
{{- toYaml $obj -}}
{{- end -}}
