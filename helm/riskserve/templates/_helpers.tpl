{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "riskserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: the release name, plus the chart name unless
the release name already contains it. */}}
{{- define "riskserve.fullname" -}}
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

{{- define "riskserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one part: include "riskserve.componentName" (list $ "seaweedfs") */}}
{{- define "riskserve.componentName" -}}
{{- printf "%s-%s" (include "riskserve.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one part: (dict "ctx" $ "name" "seaweedfs") */}}
{{- define "riskserve.selectorLabels" -}}
app.kubernetes.io/name: {{ .name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .ctx.Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* All labels of one part: (dict "ctx" $ "name" "seaweedfs" "component" "storage") */}}
{{- define "riskserve.labels" -}}
helm.sh/chart: {{ include "riskserve.chart" .ctx }}
{{ include "riskserve.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: {{ include "riskserve.name" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* image reference: (list $ .Values.images.serving); "" tag means appVersion */}}
{{- define "riskserve.image" -}}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default (index . 0).Chart.AppVersion $image.tag) }}
{{- end }}

{{/* host:port of the S3 endpoint: the in-chart SeaweedFS when seaweedfs.enabled,
else the external s3.endpoint (required then). */}}
{{- define "riskserve.s3Endpoint" -}}
{{- if .Values.seaweedfs.enabled }}
{{- printf "%s.%s.svc.cluster.local:8333" (include "riskserve.componentName" (list . "seaweedfs")) .Release.Namespace }}
{{- else if .Values.s3.endpoint }}
{{- .Values.s3.endpoint }}
{{- else }}
{{- fail "set s3.endpoint (host:port of your S3: AWS, Ceph RGW, SeaweedFS, ...) or seaweedfs.enabled=true" }}
{{- end }}
{{- end }}

{{- define "riskserve.s3EndpointUrl" -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.s3.useHttps) (include "riskserve.s3Endpoint" .) }}
{{- end }}

{{- define "riskserve.mlflowUrl" -}}
{{- printf "http://%s.%s.svc.cluster.local:5000" (include "riskserve.componentName" (list . "mlflow")) .Release.Namespace }}
{{- end }}

{{/* In-cluster base URL of a model's predictor (KServe names it <isvc>-predictor). */}}
{{- define "riskserve.predictorUrl" -}}
{{- printf "http://%s-predictor.%s.svc.cluster.local" (index . 1) (index . 0).Release.Namespace }}
{{- end }}

{{/* env entries for the S3 keys, from the Secret only. */}}
{{- define "riskserve.s3CredentialEnv" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.secret.name }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.secret.name }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}

{{- define "riskserve.apiKeyEnv" -}}
- name: {{ .envName }}
  valueFrom:
    secretKeyRef:
      name: {{ .ctx.Values.apiKey.secretName }}
      key: {{ .ctx.Values.apiKey.secretKey }}
      # The key is optional: without the Secret, auth is off.
      optional: true
{{- end }}

{{- define "riskserve.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "riskserve.tmpVolume" -}}
- name: tmp
  emptyDir: {}
{{- end }}

{{/* Where the drift monitor's passes push their gauges: driftMonitor.pushgatewayUrl,
else the in-chart Pushgateway when driftMonitor.pushgateway.enabled, else "". */}}
{{- define "riskserve.pushgatewayUrl" -}}
{{- $dm := .Values.driftMonitor }}
{{- if $dm.pushgatewayUrl }}
{{- $dm.pushgatewayUrl }}
{{- else if $dm.pushgateway.enabled }}
{{- printf "http://%s.%s.svc.cluster.local:9091" (include "riskserve.componentName" (list . "pushgateway")) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The feature store: the Feast registry and the offline store on S3. */}}
{{- define "riskserve.feastRegistryUri" -}}
{{- .Values.featureStore.registryUri | default (printf "s3://%s/feast/registry.db" .Values.s3.bucket) }}
{{- end }}

{{- define "riskserve.feastOfflineUri" -}}
{{- .Values.featureStore.offlineUri | default (printf "s3://%s/feast/offline" .Values.s3.bucket) }}
{{- end }}

{{/* host of the online store: the in-chart Valkey, else featureStore.redis.host. */}}
{{- define "riskserve.redisHost" -}}
{{- $redis := .Values.featureStore.redis }}
{{- if $redis.inCluster }}
{{- printf "%s.%s.svc.cluster.local" (include "riskserve.componentName" (list . "redis")) .Release.Namespace }}
{{- else if $redis.host }}
{{- $redis.host }}
{{- else }}
{{- fail "featureStore.redis: set host (an external Redis) or inCluster: true" }}
{{- end }}
{{- end }}

{{/* env of every feature-store client (transformer, apply Job, materialisation):
where the registry and the online store are, from the ConfigMap
riskserve-feature-store (envFrom; a fixed name, so the InferenceServices are the same
whichever tool rendered them), and the Redis password and the S3 keys from their
Secrets only. */}}
{{- define "riskserve.featureStoreEnvFrom" -}}
- configMapRef:
    name: riskserve-feature-store
{{- end }}

{{- define "riskserve.featureStoreEnv" -}}
- name: RISKSERVE_FEATURES_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.featureStore.redis.secret.name }}
      key: {{ .Values.featureStore.redis.secret.key }}
- name: HOME
  value: /tmp
{{ include "riskserve.s3CredentialEnv" . }}
{{- end }}
