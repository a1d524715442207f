{{/* Chart name, possibly overridden. */}}
{{- define "remote-ollama.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: the release name, unless it already contains the chart name. */}}
{{- define "remote-ollama.fullname" -}}
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

{{/* Value of the helm.sh/chart label. */}}
{{- define "remote-ollama.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "remote-ollama.labels" -}}
helm.sh/chart: {{ include "remote-ollama.chart" . }}
{{ include "remote-ollama.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: remote-ollama
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's objects (stable across upgrades). */}}
{{- define "remote-ollama.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remote-ollama.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of the operator pods. */}}
{{- define "remote-ollama.operatorSelectorLabels" -}}
{{ include "remote-ollama.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "remote-ollama.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remote-ollama.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference: repository plus digest, else tag, else appVersion. */}}
{{- define "remote-ollama.image" -}}
{{- $repository := required "image.repository is not set: build and push the image, then install with --set image.repository=<registry>/remote-ollama,image.tag=<tag> (README: In a Kubernetes cluster), or install the released chart from oci://ghcr.io/remote-ollama/charts/remote-ollama" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespaces whose proxies get a NetworkPolicy: the listed ones plus those of remoteOllamas. */}}
{{- define "remote-ollama.proxyNamespaces" -}}
{{- $namespaces := list }}
{{- range .Values.networkPolicy.proxyNamespaces }}
{{- $namespaces = append $namespaces . }}
{{- end }}
{{- range .Values.remoteOllamas }}
{{- $namespaces = append $namespaces (default $.Release.Namespace .namespace) }}
{{- end }}
{{- $namespaces | uniq | sortAlpha | toJson }}
{{- end }}

{{/* Egress shared by operator and proxies: DNS, API server, VMs (and the Exoscale API if asked). */}}
{{- define "remote-ollama.egressRules" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
- to:
    {{- range .np.apiServerCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range .np.apiServerPorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- if .exoscale }}
- to:
    {{- range .np.exoscaleAPICIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 443
      protocol: TCP
{{- end }}
- to:
    {{- range .np.vmCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 11435
      protocol: TCP
{{- end }}
