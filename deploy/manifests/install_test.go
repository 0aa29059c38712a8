package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallDemoOnly runs deploy/local/stack.sh install demo (make demo's install) on a
// machine without libturbojpeg's header, with apt-get, sudo and npm replaced by stubs that log
// their arguments, and requires that Debian is asked for libturbojpeg0-dev alone (none of kcat,
// ffmpeg, chromium, prometheus, redis-server), that npm fetches onnxruntime-node once, and that
// the script said what it would install before installing it.
func TestInstallDemoOnly(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	stubs, cache := t.TempDir(), t.TempDir()
	calls := filepath.Join(stubs, "calls.log")
	// npm pack writes a package archive with both architectures' libraries, as the registry's does.
	stub := map[string]string{
		"apt-get": `echo "apt-get $*" >>"$CALLS"`,
		"sudo":    `"$@"`,
		"npm": `echo "npm $*" >>"$CALLS"
mkdir -p package/bin/napi-v6/linux/x64 package/bin/napi-v6/linux/arm64
echo x64 >package/bin/napi-v6/linux/x64/libonnxruntime.so.1
echo arm64 >package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
tar -czf onnxruntime-node-1.30.0.tgz package && rm -rf package`,
	}
	for name, body := range stub {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte("#!/usr/bin/env bash\nset -e\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(root, "deploy/local/stack.sh"), "install", "demo")
	cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "CALLS="+calls,
		"STREAMDET_CACHE="+cache, "STREAMDET_TURBOJPEG_H="+filepath.Join(cache, "no-such-header.h"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh install demo: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(calls)
	log := string(b)
	var installs []string
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "apt-get" && f[1] == "install" {
			for _, a := range f[2:] {
				if !strings.HasPrefix(a, "-") {
					installs = append(installs, a)
				}
			}
		}
	}
	if strings.Join(installs, " ") != "libturbojpeg0-dev" {
		t.Errorf("apt-get installed %q, want libturbojpeg0-dev alone; calls:\n%s", installs, log)
	}
	if n := strings.Count(log, "npm pack --silent onnxruntime-node@"); n != 1 {
		t.Errorf("npm pack onnxruntime-node %d times, want once; calls:\n%s", n, log)
	}
	for _, arch := range []string{"", "linux-arm64/"} {
		if _, err := os.Stat(filepath.Join(cache, "onnxruntime/1.30.0", arch, "libonnxruntime.so.1")); err != nil {
			t.Errorf("ONNX Runtime library (%s): %v", arch, err)
		}
	}
	said := string(out)
	i, j := strings.Index(said, "the demo installs: libturbojpeg0-dev onnxruntime-node@"), strings.Index(said, "installing Debian packages")
	if i < 0 || j < 0 || i > j {
		t.Errorf("stack.sh did not say what it installs before installing:\n%s", said)
	}
}
