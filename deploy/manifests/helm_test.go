package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// helmVersion is the Helm the chart is tested with: built from the Go module proxy.
const helmVersion = "v3.22.0"

var chart = filepath.Join(repo, "deploy/helm/streamdet")

var (
	helmOnce sync.Once
	helmDir  string // removed by TestMain
	helmBin  string
	helmErr  error
)

// helm runs the pinned Helm (built once per test binary with go install).
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streamdet-helm")
		if err != nil {
			helmErr = err
			return
		}
		helmDir = dir
		cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = fmt.Errorf("go install helm %s: %v\n%s", helmVersion, err, out)
			return
		}
		helmBin = filepath.Join(dir, "helm")
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	cmd := exec.Command(helmBin, args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr.String(), out.String())
	}
	return out.String(), nil
}

// valuesFiles are the chart's test values (chart-testing's ci/ convention), "" the defaults.
func valuesFiles(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(chart, "ci", "*-values.yaml"))
	if len(files) < 3 {
		t.Fatalf("want at least three values files in %s/ci, found %d", chart, len(files))
	}
	return append([]string{""}, files...)
}

// object is one rendered manifest, decoded strictly into its API type.
type object struct {
	kind, name string
	v          any
}

// decode splits helm template's output and decodes each document strictly (an unknown or
// duplicated field is an error) into the API type of its kind.
func decode(rendered string) ([]object, error) {
	var out []object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(rendered, -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, fmt.Errorf("not YAML: %v\n%s", err, doc)
		}
		var v any
		switch meta.APIVersion + "/" + meta.Kind {
		case "apps/v1/Deployment":
			v = &appsv1.Deployment{}
		case "v1/Service":
			v = &corev1.Service{}
		case "v1/Secret":
			v = &corev1.Secret{}
		case "v1/ServiceAccount":
			v = &corev1.ServiceAccount{}
		case "policy/v1/PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "networking.k8s.io/v1/NetworkPolicy":
			v = &networkingv1.NetworkPolicy{}
		case "autoscaling/v2/HorizontalPodAutoscaler":
			v = &autoscalingv2.HorizontalPodAutoscaler{}
		case "keda.sh/v1alpha1/ScaledObject":
			v = &kedav1alpha1.ScaledObject{}
		case "keda.sh/v1alpha1/TriggerAuthentication":
			v = &kedav1alpha1.TriggerAuthentication{}
		case "monitoring.coreos.com/v1/ServiceMonitor":
			v = &monitoringv1.ServiceMonitor{}
		case "monitoring.coreos.com/v1/PrometheusRule":
			v = &monitoringv1.PrometheusRule{}
		case "v1/ConfigMap":
			v = &corev1.ConfigMap{}
		default:
			return nil, fmt.Errorf("%s %s: a kind the tests do not know (add its API type)", meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
			return nil, fmt.Errorf("%s %s: %v", meta.Kind, meta.Metadata.Name, err)
		}
		out = append(out, object{kind: meta.Kind, name: meta.Metadata.Name, v: v})
	}
	return out, nil
}

// policy checks what every install must hold, returning every violation.
func policy(t *testing.T, where string, objs []object) error {
	var errs []error
	deployments := map[string]*appsv1.Deployment{}
	for _, o := range objs {
		switch v := o.v.(type) {
		case *appsv1.Deployment:
			deployments[o.name] = v
		case *kedav1alpha1.ScaledObject:
			if v.Spec.MaxReplicaCount == nil || *v.Spec.MaxReplicaCount < 1 {
				errs = append(errs, fmt.Errorf("%s: no maxReplicaCount", o.name))
			}
			if len(v.Spec.Triggers) != 1 || v.Spec.Triggers[0].Type != "kafka" || v.Spec.Triggers[0].Metadata["lagThreshold"] == "" {
				errs = append(errs, fmt.Errorf("%s: want one kafka trigger with a lag threshold", o.name))
			}
		}
	}
	if len(deployments) == 0 {
		errs = append(errs, errors.New("no Deployment rendered"))
	}
	for name, d := range deployments {
		ps := d.Spec.Template.Spec
		drain := 20
		for _, c := range ps.Containers {
			where := fmt.Sprintf("%s: Deployment %s container %s", where, name, c.Name)
			image := c.Image
			if i := strings.LastIndex(image, ":"); i < 0 || strings.Contains(image[i:], "/") || strings.HasSuffix(image, ":latest") {
				errs = append(errs, fmt.Errorf("%s: image %q must carry a version tag, never latest", where, image))
			}
			if c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				errs = append(errs, fmt.Errorf("%s: needs CPU and memory limits", where))
			}
			if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
				c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				errs = append(errs, fmt.Errorf("%s: needs liveness on /healthz and readiness on /readyz", where))
			}
			nonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
			if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
				nonRoot = *c.SecurityContext.RunAsNonRoot
			}
			if !nonRoot {
				errs = append(errs, fmt.Errorf("%s: must run as non-root", where))
			}
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
				c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				errs = append(errs, fmt.Errorf("%s: needs a read-only root filesystem and no privilege escalation", where))
			}
			env := map[string]string{}
			for _, e := range c.Env {
				v := e.Value
				if e.ValueFrom != nil {
					if e.ValueFrom.SecretKeyRef == nil {
						errs = append(errs, fmt.Errorf("%s: %s from something other than a Secret", where, e.Name))
					}
					v = "value-from-a-secret"
				}
				env[e.Name] = v
			}
			if d, ok := env["STREAMDET_DRAIN_TIMEOUT"]; ok {
				fmt.Sscanf(d, "%ds", &drain)
			}
			service := strings.TrimPrefix(c.Name, "streamdet-")
			if err := checkServiceEnv(t, where, service, env, "/run/secrets/streamdet/"); err != nil {
				errs = append(errs, err)
			}
		}
		if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds <= int64(drain) {
			errs = append(errs, fmt.Errorf("%s: Deployment %s: terminationGracePeriodSeconds must exceed the drain timeout (%ds)", where, name, drain))
		}
	}
	return errors.Join(errs...)
}

func render(t *testing.T, values ...string) (string, error) {
	args := []string{"template", "streamdet", chart, "--namespace", "vision", "--kube-version", "1.31.0"}
	for _, v := range values {
		if v != "" {
			args = append(args, "--values", v)
		}
	}
	return helm(t, args...)
}

// TestChart: helm lint, then helm template with the default values and every ci/ values file;
// every object decoded strictly into its API type and held to the policy.
func TestChart(t *testing.T) {
	if _, err := helm(t, "lint", "--strict", chart); err != nil {
		t.Fatal(err)
	}
	for _, vf := range valuesFiles(t) {
		name := "default values"
		if vf != "" {
			name = filepath.Base(vf)
			if _, err := helm(t, "lint", "--strict", chart, "--values", vf); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		out, err := render(t, vf)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		objs, err := decode(out)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := policy(t, name, objs); err != nil {
			t.Errorf("%v", err)
		}
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.kind]++
		}
		t.Logf("%s: %v", name, kinds)
		switch filepath.Base(vf) {
		case "keda-off-values.yaml":
			if kinds["HorizontalPodAutoscaler"] != 1 || kinds["ScaledObject"] != 0 {
				t.Errorf("%s: want the CPU HPA instead of KEDA: %v", name, kinds)
			}
		case "production-values.yaml":
			if kinds["ScaledObject"] != 1 || kinds["TriggerAuthentication"] != 1 || kinds["ServiceMonitor"] != 1 || kinds["Secret"] != 1 ||
				kinds["PrometheusRule"] != 1 || kinds["ConfigMap"] != 2 {
				t.Errorf("%s: want KEDA with Kafka authentication, a ServiceMonitor, the rules, two dashboards and no credentials Secret: %v", name, kinds)
			}
			checkObservability(t, name, objs)
			for _, o := range objs {
				if so, ok := o.v.(*kedav1alpha1.ScaledObject); ok && *so.Spec.MaxReplicaCount != 24 {
					t.Errorf("%s: maxReplicaCount %d, want the 24 partitions", name, *so.Spec.MaxReplicaCount)
				}
			}
		case "minimal-values.yaml":
			if kinds["Secret"] != 1 || kinds["NetworkPolicy"] != 0 || kinds["ScaledObject"]+kinds["HorizontalPodAutoscaler"] != 0 {
				t.Errorf("%s: %v", name, kinds)
			}
		}
	}
}

// TestChartRefusesBrokenValues: values that break a manifest fail — at render time (latest tag,
// missing credentials, SASL without TLS), in strict decoding (an unknown field) or in the
// service's own validation (a required variable emptied).
func TestChartRefusesBrokenValues(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"unknown field", "common:\n  securityContext:\n    runAsNonRot: true\n", `unknown field "runAsNonRot"`},
		{"required variable emptied", "detect:\n  extraEnv:\n    - name: STREAMDET_KAFKA_BROKERS\n      value: \"\"\n", "STREAMDET_KAFKA_BROKERS"},
		{"latest tag", "image:\n  tag: latest\n", `"latest" is refused`},
		{"credentials missing", "existingSecret: \"\"\n", "credentials.minioAccessKey (or existingSecret) is required"},
		{"SASL without TLS", "kafka:\n  sasl:\n    mechanism: plain\n    username: u\n", "kafka.sasl needs kafka.tls.enabled"},
		{"no limits", "sink:\n  resources:\n    limits: null\n", "needs CPU and memory limits"},
	} {
		f := filepath.Join(t.TempDir(), "values.yaml")
		os.WriteFile(f, []byte(tc.values), 0o644)
		out, err := render(t, f)
		if err == nil {
			var objs []object
			if objs, err = decode(out); err == nil {
				err = policy(t, tc.name, objs)
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// checkObservability: the ServiceMonitor labels every target with its service, the PrometheusRule
// holds exactly the rules of deploy/prometheus, and the dashboards' ConfigMaps hold exactly the
// JSON of deploy/grafana, labelled for Grafana's sidecar.
func checkObservability(t *testing.T, where string, objs []object) {
	t.Helper()
	var rules struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	b, err := os.ReadFile(filepath.Join(repo, "deploy/prometheus/streamdet.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/streamdet.rules.yml: %v", err)
	}
	dashboards := 0
	for _, o := range objs {
		switch v := o.v.(type) {
		case *monitoringv1.ServiceMonitor:
			ok := false
			for _, r := range v.Spec.Endpoints[0].RelabelConfigs {
				ok = ok || r.TargetLabel == "service"
			}
			if !ok {
				t.Errorf("%s: ServiceMonitor sets no service label", where)
			}
		case *monitoringv1.PrometheusRule:
			got, _ := yaml.Marshal(v.Spec.Groups)
			want, _ := yaml.Marshal(rules.Groups)
			if !bytes.Equal(got, want) || len(v.Spec.Groups) < 2 {
				t.Errorf("%s: PrometheusRule differs from deploy/prometheus/streamdet.rules.yml (run make dashboards)", where)
			}
		case *corev1.ConfigMap:
			if v.Labels["grafana_dashboard"] != "1" {
				continue
			}
			for file, js := range v.Data {
				dashboards++
				want, err := os.ReadFile(filepath.Join(repo, "deploy/grafana", file))
				if err != nil || strings.TrimSpace(string(want)) != strings.TrimSpace(js) {
					t.Errorf("%s: ConfigMap %s: %s differs from deploy/grafana/%s", where, o.name, file, file)
				}
			}
		}
	}
	if dashboards != 2 {
		t.Errorf("%s: %d dashboards in ConfigMaps, want 2", where, dashboards)
	}
}
