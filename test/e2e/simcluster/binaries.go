package simcluster

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The components of the simulated cluster, all built from the Go module
// proxy by hack/tool.sh and cached (~/.cache/parser-operator): only the
// first start on a machine is slow.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// binaries maps a component to its executable.
type binaries map[string]string

// findBinaries resolves every component: $SIMCLUSTER_BIN_DIR/<name> when that
// variable is set (a user's own builds), else `hack/tool.sh <name>`, which
// prints the cached binary and builds it first when it is missing. Build
// output goes to progress.
func findBinaries(repoRoot string, progress io.Writer) (binaries, error) {
	b := binaries{}
	if dir := os.Getenv("SIMCLUSTER_BIN_DIR"); dir != "" {
		for _, name := range components {
			path := filepath.Join(dir, name)
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("SIMCLUSTER_BIN_DIR=%s has no %s: %w", dir, name, err)
			}
			b[name] = path
		}
		return b, nil
	}
	tool := filepath.Join(repoRoot, "hack", "tool.sh")
	for _, name := range components {
		var out bytes.Buffer
		cmd := exec.Command(tool, name)
		cmd.Stdout, cmd.Stderr = &out, progress
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("hack/tool.sh %s: %w", name, err)
		}
		b[name] = strings.TrimSpace(out.String())
	}
	return b, nil
}

// findRepoRoot walks up from the working directory to the go.mod of this
// module: `go test` runs in the package directory, the CLI in the clone.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isThisModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

const modulePath = "github.com/vkparser/parser-operator"

func isThisModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}
