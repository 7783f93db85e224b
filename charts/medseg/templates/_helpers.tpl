{{- define "medseg.labels" -}}
app.kubernetes.io/name: medseg
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "medseg.selectorLabels" -}}
app.kubernetes.io/name: medseg
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "medseg.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "medseg.annotations" -}}
{{- with .Values.extraAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "medseg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default .Release.Name .Values.serviceAccount.name }}
{{- else -}}
{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{- /* Pull secrets: the chart's own and the parent chart's global ones, each once. */ -}}
{{- define "medseg.imagePullSecrets" -}}
{{- $secrets := list }}
{{- range (concat (default list .Values.global.imagePullSecrets) (default list .Values.imagePullSecrets)) }}
{{- $name := . }}{{- if kindIs "map" . }}{{- $name = .name }}{{- end }}
{{- if not (has $name $secrets) }}{{- $secrets = append $secrets $name }}{{- end }}
{{- end }}
{{- if $secrets }}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
