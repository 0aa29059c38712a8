// Package manifests holds the tests of streamdet's deployment files: the Helm chart
// (deploy/helm/streamdet), the compose file (deploy/compose) and the systemd units
// (deploy/systemd). Each is rendered or parsed by the tool its users run (helm, compose-go,
// systemd-analyze), every object is decoded strictly into its API type, and the environment each
// service gets is run through that service's own ConfigFromEnv and Validate, so a deployment
// that would not start fails here; and what the local scripts install (make demo: two things).
package manifests
