{{/* The records pass's environment: the log (the drift monitor's), the records, the
retention, S3 as the predictors reach it. */}}
{{- define "riskserve.recordsEnv" -}}
- name: RISKSERVE_GOVERNANCE_INFERENCE_LOG_URI
  value: {{ .Values.records.logUri | default .Values.driftMonitor.logUri | quote }}
- name: RISKSERVE_GOVERNANCE_RECORDS_URI
  value: {{ .Values.records.uri | quote }}
- name: RISKSERVE_GOVERNANCE_RECORDS_RETENTION_DAYS
  value: {{ .Values.records.retentionDays | quote }}
- name: AWS_ENDPOINT_URL
  value: {{ include "riskserve.s3EndpointUrl" . | quote }}
- name: S3_VERIFY_SSL
  value: {{ ternary "1" "0" .Values.s3.verifySsl | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
- name: HOME
  value: /tmp
{{ include "riskserve.s3CredentialEnv" . }}
{{- end }}
