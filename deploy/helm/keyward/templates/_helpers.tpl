{{/* Names and labels. */}}
{{- define "keyward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keyward.fullname" -}}
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

{{- define "keyward.gatewayName" -}}
{{- printf "%s-gateway" (include "keyward.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keyward.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "keyward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels; "component" tells serve and gateway pods apart. */}}
{{- define "keyward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyward.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "keyward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keyward.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keyward.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Fails the render when a setting is missing or misplaced, with what to do: a chart that installs
and then crash-loops is worse than one that refuses.
*/}}
{{- define "keyward.validate" -}}
{{- $v := .Values }}
{{- range $reserved := list "KEYWARD_DATABASE_URL" "KEYWARD_MASTER_KEY" }}
{{- if hasKey $v.envVars $reserved }}
{{- fail (printf "envVars.%s would put a secret in the pod spec: use secrets.%s (or database/masterKey) instead" $reserved $reserved) }}
{{- end }}
{{- end }}
{{- if not (or $v.database.url $v.database.existingSecret (hasKey $v.secrets "KEYWARD_DATABASE_URL")) }}
{{- fail "database.url (or database.existingSecret) is required: several replicas share PostgreSQL, e.g. --set database.url=postgres://keyward:…@postgres:5432/keyward" }}
{{- end }}
{{- if not (or $v.masterKey.value $v.masterKey.existingSecret (hasKey $v.secrets "KEYWARD_MASTER_KEY")) }}
{{- fail "masterKey.value (or masterKey.existingSecret) is required: every replica must seal with the same key; make one with `openssl rand -base64 32`" }}
{{- end }}
{{- with $v.masterKey.value }}
{{- if ne (len (b64dec .)) 32 }}
{{- fail "masterKey.value must be the base64 of 32 bytes: make one with `openssl rand -base64 32`" }}
{{- end }}
{{- end }}
{{- if not (hasPrefix "https://" $v.publicUrl) }}
{{- fail (printf "publicUrl %q must start with https:// (clouds fetch the OIDC discovery over HTTPS)" $v.publicUrl) }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if and $v.gateway.tls.enabled (not $v.gateway.tls.secretName) }}
{{- fail "gateway.tls.enabled needs gateway.tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- end }}

{{/* A secretKeyRef env entry for a setting that may live in a Secret of the user's. */}}
{{- define "keyward.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ if .existing }}{{ .existing }}{{ else }}{{ include "keyward.fullname" .root }}{{ end }}
      key: {{ if .existing }}{{ .existingKey }}{{ else }}{{ .name }}{{ end }}
{{- end }}

{{/*
The environment both processes share: storage, database and master key, then envVars (plain) and
secrets (secretKeyRef). `extra` holds the process's own defaults; a key in envVars overrides one.
*/}}
{{- define "keyward.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $plain := merge (dict) .envVars }}
{{- range $name, $value := .extra }}
{{- if not (hasKey $plain $name) }}
{{- $_ := set $plain $name $value }}
{{- end }}
{{- end }}
{{- if not (hasKey $plain "KEYWARD_DATA_DIR") }}
{{- $_ := set $plain "KEYWARD_DATA_DIR" "/var/lib/keyward" }}
{{- end }}
{{- range $name, $value := $plain }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{ include "keyward.secretEnv" (dict "root" $root "name" "KEYWARD_DATABASE_URL" "existing" $v.database.existingSecret "existingKey" $v.database.existingSecretKey) }}
{{ include "keyward.secretEnv" (dict "root" $root "name" "KEYWARD_MASTER_KEY" "existing" $v.masterKey.existingSecret "existingKey" $v.masterKey.existingSecretKey) }}
{{- range $name, $_ := $v.secrets }}
{{- if not (has $name (list "KEYWARD_DATABASE_URL" "KEYWARD_MASTER_KEY")) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "keyward.fullname" $root }}
      key: {{ $name }}
{{- end }}
{{- end }}
{{- end }}

{{/* A probe from values, on HTTPS when the pod serves TLS. */}}
{{- define "keyward.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .tls $probe.httpGet }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
