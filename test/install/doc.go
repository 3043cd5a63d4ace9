// Package install holds the tests of the two ways a user installs the
// operator: the Helm chart (charts/parser-operator) and kustomize
// (config/default). They render both with the real tools (helm, kubectl
// kustomize) and prove that the chart's defaults install what kustomize
// installs, that the chart's RBAC is the controller-gen role, that
// values.schema.json refuses bad values, and that the pods meet Pod Security
// "restricted". `make chart-check` runs them; so does `make test`.
package install
