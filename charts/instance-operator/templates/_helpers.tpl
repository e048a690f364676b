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

{{/*
"true" when the API's certificate comes from cert-manager: asked for, or
"auto" and the cluster serves cert-manager.io/v1.
*/}}
{{- define "instance-operator.apiCertManager" -}}
{{- $source := .Values.api.tls.source -}}
{{- if not (has $source (list "auto" "cert-manager" "self-signed")) -}}
{{- fail (printf "api.tls.source %q: use auto, cert-manager or self-signed" $source) -}}
{{- end -}}
{{- if or (eq $source "cert-manager") (and (eq $source "auto") (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
true
{{- end -}}
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
