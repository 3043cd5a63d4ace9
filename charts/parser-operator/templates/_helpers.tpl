{{/*
Names. With the release called "parser-operator" (the README's command) every
object has the name kustomize gives it in config/default ("parser-operator-"
+ the base name), which test/install relies on. The prefix is cut to 28
characters so the longest name, "<prefix>-controller-manager-metrics-service",
fits the 63 characters of a Service name.
*/}}
{{- define "parser-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 28 | trimSuffix "-" }}
{{- end }}

{{- define "parser-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 28 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 28 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 28 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "parser-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. The pod selector keeps kustomize's
"control-plane: controller-manager", so `kubectl get pods -l
control-plane=controller-manager` finds the operator however it was installed.
*/}}
{{- define "parser-operator.labels" -}}
{{ include "parser-operator.commonLabels" . }}
control-plane: controller-manager
{{- end }}

{{/*
Labels without "control-plane", for pods that are not the operator (the helm
test pod), so the metrics Service and the PDB never select them.
*/}}
{{- define "parser-operator.commonLabels" -}}
helm.sh/chart: {{ include "parser-operator.chart" . }}
app.kubernetes.io/name: {{ include "parser-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "parser-operator.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: {{ include "parser-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "parser-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "parser-operator.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "parser-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "parser-operator.metricsScheme" -}}
{{- if .Values.metrics.secure }}https{{ else }}http{{ end }}
{{- end }}

{{/*
The operator's flags. The defaults give exactly the args of
config/manager/manager.yaml; optional knobs are passed only when set, so the
binary's own defaults stay the single source of truth.
*/}}
{{- define "parser-operator.args" -}}
{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- end }}
- --health-probe-bind-address=:{{ .Values.healthProbe.port }}
{{- if .Values.metrics.enabled }}
- --metrics-bind-address=:{{ .Values.metrics.port }}
{{- if not .Values.metrics.secure }}
- --metrics-secure=false
{{- end }}
{{- else }}
- --metrics-bind-address=0
{{- end }}
{{- with .Values.watchNamespaces }}
- --watch-namespaces={{ join "," . }}
{{- end }}
{{- with .Values.maxConcurrentReconciles }}
- --max-concurrent-reconciles={{ . }}
{{- end }}
{{- with .Values.kubeAPI.qps }}
- --kube-api-qps={{ . }}
{{- end }}
{{- with .Values.kubeAPI.burst }}
- --kube-api-burst={{ . }}
{{- end }}
{{- if .Values.kubeAPI.compression }}
- --kube-api-compression
{{- end }}
{{- with .Values.logging.level }}
- --zap-log-level={{ . }}
{{- end }}
{{- with .Values.logging.encoder }}
- --zap-encoder={{ . }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Rules that values.schema.json cannot express because they tie two values
together; failing here names both.
*/}}
{{- define "parser-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicas=%d needs leaderElection.enabled=true: without a leader every replica would reconcile the same platforms" (int .Values.replicas)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled=true needs metrics.enabled=true: there is no metrics Service to scrape" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.healthProbe.port)) }}
{{- fail (printf "metrics.port and healthProbe.port are both %d: give them different ports" (int .Values.metrics.port)) }}
{{- end }}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.create=false needs serviceAccount.name: the existing ServiceAccount the operator runs as" }}
{{- end }}
{{- end }}

{{/*
Resources that exist once per cluster, not per namespace: a Role cannot grant
them, so with watchNamespaces their rules go to a ClusterRole. Kubernetes'
cluster-scoped kinds; extend it when a +kubebuilder:rbac marker names another
(test/install fails until the rule lands in the right place).
*/}}
{{- define "parser-operator.clusterScopedResources" -}}
{{- list "customresourcedefinitions" "namespaces" "nodes" "persistentvolumes" "storageclasses" "csidrivers" "csinodes" "volumeattachments" "clusterroles" "clusterrolebindings" "priorityclasses" "runtimeclasses" "ingressclasses" "apiservices" "mutatingwebhookconfigurations" "validatingwebhookconfigurations" "validatingadmissionpolicies" "validatingadmissionpolicybindings" "certificatesigningrequests" "tokenreviews" "subjectaccessreviews" "selfsubjectaccessreviews" "selfsubjectrulesreviews" "componentstatuses" | toJson }}
{{- end }}

{{/*
The generated manager rules (templates/_manager_rules.tpl) split by scope:
{"namespaced": [...], "cluster": [...]}. A rule naming both kinds of resources
is split in two with the same groups and verbs; subresources ("x/status")
follow their resource; non-resource URLs are cluster-wide.
*/}}
{{- define "parser-operator.rulesByScope" -}}
{{- $clusterScoped := include "parser-operator.clusterScopedResources" . | fromJsonArray }}
{{- $namespaced := list }}
{{- $cluster := list }}
{{- range include "parser-operator.managerRules" . | fromYamlArray }}
{{- $rule := . }}
{{- if $rule.nonResourceURLs }}
{{- $cluster = append $cluster $rule }}
{{- else }}
{{- $n := list }}
{{- $c := list }}
{{- range $rule.resources }}
{{- if has (first (splitList "/" .)) $clusterScoped }}
{{- $c = append $c . }}
{{- else }}
{{- $n = append $n . }}
{{- end }}
{{- end }}
{{- if $n }}
{{- $namespaced = append $namespaced (merge (dict "resources" $n) (omit $rule "resources")) }}
{{- end }}
{{- if $c }}
{{- $cluster = append $cluster (merge (dict "resources" $c) (omit $rule "resources")) }}
{{- end }}
{{- end }}
{{- end }}
{{- dict "namespaced" $namespaced "cluster" $cluster | toJson }}
{{- end }}
