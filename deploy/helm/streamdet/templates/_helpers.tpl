{{/* Names and labels. */}}
{{- define "streamdet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{/* labels of every object, besides its selector labels */}}
{{- define "streamdet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: streamdet
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* labels of an object that belongs to no one component */}}
{{- define "streamdet.releaseLabels" -}}
{{ include "streamdet.labels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* selector labels of one component: (dict "ctx" $ "name" "detect") */}}
{{- define "streamdet.selector" -}}
app.kubernetes.io/name: streamdet-{{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{- define "streamdet.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- if eq $tag "latest" -}}{{- fail "image.tag: \"latest\" is refused; pin a version" -}}{{- end -}}
{{ .ctx.Values.image.registry }}/streamdet-{{ .name }}:{{ $tag }}
{{- end -}}

{{- define "streamdet.secretName" -}}
{{- default (printf "%s-credentials" (include "streamdet.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{/* The variables every service reads: Kafka, object storage, telemetry, drain. */}}
{{- define "streamdet.commonEnv" -}}
{{- $v := .Values -}}
- name: STREAMDET_KAFKA_BROKERS
  value: {{ required "kafka.brokers is required" $v.kafka.brokers | quote }}
- name: STREAMDET_TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
{{- if $v.kafka.tls.enabled }}
- name: STREAMDET_KAFKA_TLS
  value: "true"
{{- if $v.kafka.tls.secretName }}
- name: STREAMDET_KAFKA_TLS_CA_FILE
  value: /run/secrets/streamdet/kafka-tls/ca.crt
{{- end }}
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
{{- if not $v.kafka.tls.enabled }}{{ fail "kafka.sasl needs kafka.tls.enabled: credentials are never sent in clear" }}{{ end }}
- name: STREAMDET_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: STREAMDET_KAFKA_SASL_USERNAME
  value: {{ required "kafka.sasl.username is required with a SASL mechanism" $v.kafka.sasl.username | quote }}
- name: STREAMDET_KAFKA_SASL_PASSWORD_FILE
  value: /run/secrets/streamdet/credentials/{{ $v.kafka.sasl.passwordKey }}
{{- end }}
- name: STREAMDET_MINIO_ENDPOINT
  value: {{ required "objectStorage.endpoint is required" $v.objectStorage.endpoint | quote }}
- name: STREAMDET_MINIO_REGION
  value: {{ $v.objectStorage.region | quote }}
- name: STREAMDET_MINIO_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "streamdet.secretName" . }}
      key: minio-access-key
- name: STREAMDET_MINIO_SECRET_KEY_FILE
  value: /run/secrets/streamdet/credentials/minio-secret-key
{{- if $v.objectStorage.tls.enabled }}
- name: STREAMDET_MINIO_TLS
  value: "true"
{{- if $v.objectStorage.tls.secretName }}
- name: STREAMDET_MINIO_TLS_CA_FILE
  value: /run/secrets/streamdet/minio-tls/ca.crt
{{- end }}
{{- end }}
- name: STREAMDET_FRAMES_BUCKET
  value: {{ $v.objectStorage.framesBucket | quote }}
- name: STREAMDET_DRAIN_TIMEOUT
  value: {{ printf "%ds" (int $v.drainTimeoutSeconds) | quote }}
- name: STREAMDET_LOG_LEVEL
  value: {{ $v.telemetry.logLevel | quote }}
{{- if $v.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.telemetry.otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.telemetry.otlpProtocol | quote }}
{{- end }}
{{- end -}}

{{/* Secret volumes every service mounts (credentials, TLS authorities). */}}
{{- define "streamdet.volumes" -}}
- name: credentials
  secret:
    secretName: {{ include "streamdet.secretName" . }}
    defaultMode: 0440
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if and .Values.objectStorage.tls.enabled .Values.objectStorage.tls.secretName }}
- name: minio-tls
  secret:
    secretName: {{ .Values.objectStorage.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.secretName }}
- name: redis-tls
  secret:
    secretName: {{ .Values.redis.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "streamdet.volumeMounts" -}}
- name: credentials
  mountPath: /run/secrets/streamdet/credentials
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /run/secrets/streamdet/kafka-tls
  readOnly: true
{{- end }}
{{- if and .Values.objectStorage.tls.enabled .Values.objectStorage.tls.secretName }}
- name: minio-tls
  mountPath: /run/secrets/streamdet/minio-tls
  readOnly: true
{{- end }}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.secretName }}
- name: redis-tls
  mountPath: /run/secrets/streamdet/redis-tls
  readOnly: true
{{- end }}
{{- end -}}
