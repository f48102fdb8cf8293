{{/* Names, labels and the operator's command line. */}}

{{- define "costwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "costwarden.fullname" -}}
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

{{- define "costwarden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "costwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "costwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "costwarden.labels" -}}
helm.sh/chart: {{ include "costwarden.chart" . }}
{{ include "costwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: costwarden
{{- end }}

{{/* The node agent's pods: a name of their own, so that no selector of the operator's (Deployment,
Service, PodDisruptionBudget, anti-affinity) matches them. The operator finds them by these. */}}
{{- define "costwarden.agentName" -}}
{{- printf "%s-agent" (include "costwarden.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "costwarden.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-agent" (include "costwarden.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "costwarden.agentLabels" -}}
helm.sh/chart: {{ include "costwarden.chart" . }}
{{ include "costwarden.agentSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: costwarden
app.kubernetes.io/component: agent
{{- end }}

{{/* The label selector `costwarden run --agent-selector` takes: the agent pods' selector labels. */}}
{{- define "costwarden.agentSelector" -}}
{{- $labels := include "costwarden.agentSelectorLabels" . | fromYaml }}
{{- $terms := list }}
{{- range $key := keys $labels | sortAlpha }}
{{- $terms = append $terms (printf "%s=%s" $key (get $labels $key)) }}
{{- end }}
{{- join "," $terms }}
{{- end }}

{{- define "costwarden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "costwarden.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "costwarden.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The coordination.k8s.io Lease the replicas elect their leader with (in the release namespace). */}}
{{- define "costwarden.leaseName" -}}
{{- default (include "costwarden.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* kopf serves each admission handler at /<handler id>: costwarden.operator.admission.HANDLER_ID. */}}
{{- define "costwarden.webhookPath" -}}
/costwarden-block-exhausted
{{- end }}

{{- define "costwarden.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "costwarden.fullname" .) }}
{{- end }}

{{/* The CA bundle the webhook verifies clients against (webhook.clientCA), mounted from its Secret. */}}
{{- define "costwarden.webhookClientCADir" -}}
/etc/costwarden/webhook-client-ca
{{- end }}

{{- define "costwarden.validateWebhookAccess" -}}
{{- $client := .Values.webhook.clientCA }}
{{- if and $client.allowedNames (not $client.secretName) }}
{{- fail "webhook.clientCA.allowedNames needs webhook.clientCA.secretName: the names are subject CNs of client certificates that CA signed" }}
{{- end }}
{{- if and $client.secretName (not .Values.webhook.enabled) }}
{{- fail "webhook.clientCA needs webhook.enabled: it is the CA the webhook server verifies its callers against" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.webhook.enabled (not .Values.networkPolicy.webhook.allowedFrom) }}
{{- fail "networkPolicy.enabled with webhook.enabled needs networkPolicy.webhook.allowedFrom: the peers the API server's webhook calls come from (e.g. [{ipBlock: {cidr: 10.0.0.10/32}}] for a control-plane node). Without them the policy cuts the API server off: with failurePolicy Ignore the guard silently stops, with Fail no pod the webhook matches can start" }}
{{- end }}
{{- end }}

{{- define "costwarden.webhookServicePort" -}}
{{- if .Values.webhook.managedByOperator }}{{ .Values.webhook.port }}{{ else }}{{ .Values.service.webhookPort }}{{ end }}
{{- end }}

{{/* Protected namespaces: the configured ones and the release's own, sorted and unique. */}}
{{- define "costwarden.protectedNamespaces" -}}
{{- append .Values.operator.protectedNamespaces .Release.Namespace | uniq | sortAlpha | toJson }}
{{- end }}

{{/* The billing store: its file, the directory its volume is mounted at, and the claim. */}}
{{- define "costwarden.billingStoreDir" -}}
{{- dir .Values.billing.store.path }}
{{- end }}

{{- define "costwarden.billingClaimName" -}}
{{- with .Values.billing.store.persistence }}
{{- default (printf "%s-billing" (include "costwarden.fullname" $) | trunc 63 | trimSuffix "-") .existingClaim }}
{{- end }}
{{- end }}

{{- define "costwarden.validateBilling" -}}
{{- $billing := .Values.billing }}
{{- $store := $billing.store }}
{{- if and $billing.sources (not $store.enabled) }}
{{- fail "billing.sources need billing.store.enabled: the exports are synced into the store, and reconciled there with the operator's estimates" }}
{{- end }}
{{- if $store.enabled }}
{{- $dir := include "costwarden.billingStoreDir" . }}
{{- if or (eq $dir "/" "/tmp") (hasPrefix "/tmp/" $dir) (eq $dir "/etc/costwarden") (hasPrefix "/etc/costwarden/" $dir) }}
{{- fail (printf "billing.store.path %s: its directory %s is mounted as the store's volume, so it must be a directory of its own (not /, /tmp or /etc/costwarden), e.g. /var/lib/costwarden/billing.duckdb" $store.path $dir) }}
{{- end }}
{{- if le (float64 $billing.anomalyFactor) 1.0 }}
{{- fail (printf "billing.anomalyFactor must be a number > 1 (billed / estimated), got %v" $billing.anomalyFactor) }}
{{- end }}
{{- if and $store.persistence.enabled (gt (int .Values.replicaCount) 1) (not (has "ReadWriteMany" $store.persistence.accessModes)) }}
{{- fail (printf "billing.store.persistence with replicaCount %v needs billing.store.persistence.accessModes [ReadWriteMany] (got %v): every replica mounts the store's volume (only the leader opens the DuckDB file), and a ReadWriteOnce volume attaches to one node at a time. Use a ReadWriteMany storage class (EFS, Filestore, Azure Files) or replicaCount=1" .Values.replicaCount $store.persistence.accessModes) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "costwarden.validateClouds" -}}
{{- with .Values.clouds }}
{{- if and .scopes .staleAfter (le (float64 .staleAfter) (float64 .interval)) }}
{{- fail (printf "clouds.staleAfter must be more than clouds.interval (got %v <= %v): a scope is polled once per interval, so every answer would be stale and no VM could ever be stopped or terminated. Use 0 (three intervals) or a larger value" .staleAfter .interval) }}
{{- end }}
{{- end }}
{{- end }}

{{/* slurmrestd's JWT: the Secret's key, mounted read-only as a file (a Secret volume, not a
subPath, so that the kubelet refreshes it when the Secret is rotated). */}}
{{- define "costwarden.slurmTokenDir" -}}
/etc/costwarden/slurmrestd
{{- end }}

{{- define "costwarden.slurmTokenFile" -}}
{{- printf "%s/token" (include "costwarden.slurmTokenDir" .) }}
{{- end }}

{{- define "costwarden.validateSlurm" -}}
{{- with .Values.slurm }}
{{- $restd := .restd }}
{{- if $restd.url }}
{{- if ne (len .clusters) 1 }}
{{- fail (printf "slurm.restd.url serves one Slurm cluster: give exactly one name in slurm.clusters (got %d: %v): the operator reads one cluster through slurmrestd, several only through the client commands" (len .clusters) .clusters) }}
{{- end }}
{{- if not $restd.tokenSecret.name }}
{{- fail "slurm.restd.url needs slurm.restd.tokenSecret.name: the Secret in the release namespace holding slurmrestd's JWT (key slurm.restd.tokenSecret.key, default token), mounted as a file for --slurmrestd-token-file" }}
{{- end }}
{{- else }}
{{- if or $restd.user $restd.tokenSecret.name }}
{{- fail "slurm.restd.user and slurm.restd.tokenSecret need slurm.restd.url: without slurmrestd the operator runs the client commands and sends no token" }}
{{- end }}
{{- end }}
{{- if and .clusters .staleAfter (le (float64 .staleAfter) (float64 .interval)) }}
{{- fail (printf "slurm.staleAfter must be more than slurm.interval (got %v <= %v): a cluster is read once per interval, so every read would be stale and no job could ever be cancelled or suspended. Use 0 (three intervals) or a larger value" .staleAfter .interval) }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
Cloud VMs and Slurm jobs are in no namespace: the release chooses which namespaces' CostBudgets may
reach them (docs/security.md), rather than every namespace by default.
*/ -}}
{{- define "costwarden.validateOutside" -}}
{{- $outside := .Values.operator.outsideNamespaces }}
{{- if and (or .Values.clouds.scopes .Values.slurm.clusters) (not $outside) }}
{{- fail "clouds.scopes and slurm.clusters need operator.outsideNamespaces: the namespaces whose CostBudgets may cover and stop cloud VMs and Slurm jobs with the operator's cloud and Slurm identity (VMs and jobs are in no namespace, so a budget in any namespace could otherwise name them). List them, or give [\"*\"] to allow every namespace; see docs/security.md" }}
{{- end }}
{{- if .Values.operator.outsideNamespacesPolicy }}
{{- if or (not $outside) (has "*" $outside) }}
{{- fail "operator.outsideNamespacesPolicy needs operator.outsideNamespaces naming namespaces (not *): the policy refuses spec.slurm in every other namespace" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "costwarden.validate" -}}
{{- include "costwarden.validateBilling" . }}
{{- include "costwarden.validateClouds" . }}
{{- include "costwarden.validateSlurm" . }}
{{- include "costwarden.validateOutside" . }}
{{- include "costwarden.validateWebhookAccess" . }}
{{- $le := .Values.leaderElection }}
{{- if and (gt (int .Values.replicaCount) 1) (not $le.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled: without a Lease to elect one leader, every replica would price, evaluate and enforce at once" }}
{{- end }}
{{- if and $le.enabled (not (and (lt (float64 $le.retryPeriod) (float64 $le.renewDeadline)) (lt (float64 $le.renewDeadline) (float64 $le.leaseDuration)))) }}
{{- fail (printf "leaderElection needs retryPeriod < renewDeadline < leaseDuration (got %v, %v, %v): the leader must stop acting before a standby may take over" $le.retryPeriod $le.renewDeadline $le.leaseDuration) }}
{{- end }}
{{- end }}

{{/* The `costwarden run` arguments (the image's entrypoint is `costwarden run`). */}}
{{- define "costwarden.args" -}}
{{- $op := .Values.operator -}}
- --interval={{ $op.interval }}
- --accrual-interval={{ $op.accrualInterval }}
- --annotation-interval={{ $op.annotationInterval }}
- --write-rate={{ $op.writeRate }}
- --metrics-port={{ $op.metricsPort }}
- --enforcement={{ $op.enforcement }}
{{- range $op.namespaces }}
- --namespace={{ . }}
{{- end }}
- --operator-namespace={{ .Release.Namespace }}
{{- range $op.protectedNamespaces }}
- --protected-namespace={{ . }}
{{- end }}
{{- range $op.outsideNamespaces }}
- {{ printf "--outside-namespace=%s" . | quote }}
{{- end }}
- --max-destructive-per-minute={{ $op.maxDestructivePerMinute }}
{{- with .Values.leaderElection }}
{{- if .enabled }}
- --lease={{ include "costwarden.leaseName" $ }}
- --lease-namespace=$(POD_NAMESPACE)
- --lease-identity=$(POD_NAME)
- --lease-duration={{ .leaseDuration }}
- --renew-deadline={{ .renewDeadline }}
- --retry-period={{ .retryPeriod }}
{{- end }}
{{- end }}
{{- if .Values.priceOverrides }}
- --price-overrides=/etc/costwarden/config/price-overrides.yaml
{{- end }}
{{- with .Values.billing }}
{{- if .store.enabled }}
- {{ printf "--billing-store=%s" .store.path | quote }}
{{- range .sources }}
- {{ printf "--billing-source=%s" . | quote }}
{{- end }}
- --billing-interval={{ .interval }}
- --billing-stale-after={{ .staleAfterHours }}
- --billing-anomaly-factor={{ .anomalyFactor }}
{{- end }}
{{- end }}
{{- if .Values.priceFeeds }}
- --price-feed={{ join "," .Values.priceFeeds }}
- --price-feed-interval={{ .Values.priceFeedInterval }}
{{- end }}
{{- with .Values.clouds }}
{{- if .scopes }}
{{- range .scopes }}
- {{ printf "--cloud=%s" . | quote }}
{{- end }}
- --cloud-interval={{ .interval }}
{{- if .staleAfter }}
- --cloud-stale-after={{ .staleAfter }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.slurm }}
{{- if .clusters }}
{{- range .clusters }}
- {{ printf "--slurm=%s" . | quote }}
{{- end }}
{{- with .restd }}
{{- if .url }}
- {{ printf "--slurmrestd-url=%s" .url | quote }}
- --slurmrestd-token-file={{ include "costwarden.slurmTokenFile" $ }}
{{- if .user }}
- {{ printf "--slurmrestd-user=%s" .user | quote }}
{{- end }}
{{- end }}
{{- end }}
- --slurm-interval={{ .interval }}
{{- if .staleAfter }}
- --slurm-stale-after={{ .staleAfter }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.agent.enabled }}
- --agent-selector={{ include "costwarden.agentSelector" . }}
{{- end }}
{{- with .Values.telemetry }}
{{- if .prometheusUrl }}
- --prometheus-url={{ .prometheusUrl }}
{{- end }}
{{- if .dcgmExporterSelector }}
- --dcgm-exporter-selector={{ .dcgmExporterSelector }}
{{- end }}
- --telemetry-interval={{ .interval }}
{{- if .staleAfter }}
- --telemetry-stale-after={{ .staleAfter }}
{{- end }}
{{- end }}
{{- if $op.dryRun }}
- --dry-run
{{- end }}
{{- if $op.verbose }}
- --verbose
{{- end }}
{{- if .Values.webhook.enabled }}
- --webhook-port={{ .Values.webhook.port }}
- --webhook-cert-dir=/etc/costwarden/webhook
- --webhook-failure-policy={{ .Values.webhook.failurePolicy }}
{{- if .Values.webhook.managedByOperator }}
- --webhook-host={{ include "costwarden.fullname" . }}.{{ .Release.Namespace }}.svc
{{- else }}
- --no-webhook-managed
{{- end }}
{{- with .Values.webhook.clientCA }}
{{- if .secretName }}
- --webhook-client-ca={{ include "costwarden.webhookClientCADir" $ }}/ca.crt
{{- range .allowedNames }}
- {{ printf "--webhook-client-name=%s" . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $op.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The operator's rules on namespaced objects: in the ClusterRole when it watches the whole cluster,
else in a Role in each namespace of operator.namespaces (rbac.yaml).
*/}}
{{- define "costwarden.namespacedRules" -}}
# Pods: the informer's index (list, watch); spend annotations (patch); Kill (delete).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, patch, delete]
# Events on budgets and pods: the operator's notices and kopf's own.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Notification credentials a budget names (Slack token, webhook URL, PagerDuty key), read in the
# budget's own namespace: one Secret by name, never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Scale: a pod's owner chain, and replicas to 0 (the previous count kept in an annotation).
- apiGroups: [apps]
  resources: [deployments, replicasets, statefulsets]
  verbs: [get, patch]
# Suspend: spec.suspend on Jobs and JobSets.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, patch]
- apiGroups: [jobset.x-k8s.io]
  resources: [jobsets]
  verbs: [get, patch]
# The budgets: the informer's index (list, watch), re-read after a conflict (get), annotated
# (patch), status written by the operator.
- apiGroups: [costwarden.dev]
  resources: [costbudgets]
  verbs: [get, list, watch, patch]
- apiGroups: [costwarden.dev]
  resources: [costbudgets/status]
  verbs: [patch]
{{- end }}
